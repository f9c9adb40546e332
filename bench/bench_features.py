#!/usr/bin/env python
"""Benchmark the data half of the nightly pipeline: ingest, validate, features.

For one scenario it generates a world (or reuses ``--home``), ingests every date, and then
measures, in one run, side by side:

- ``ingest + validate_raw`` for one night (the last date);
- the full feature build over the whole window (``--from/--to``: one Spark job, one task
  per chunk of days);
- one incremental night (the last date, reading only its 30-day lookback);

and checks that the incremental night's rows equal the full build's rows for that date.
Peak memory is sampled over the whole process tree (Python driver and the Spark JVM).

To keep the benchmark about features, the clean tables for the backfill are made by
copying the ingested raw partitions cast to the schema (validation of one night is timed
on its own). Targets on ``medium``: full build <= 10 minutes, one night <= 2 minutes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS,
    clean_from_raw,
    command,
    machine,
    machine_line,
    update_results,
)

SECTION = "## Features (`replenish run build_features`)"
TARGETS = {"full": 600.0, "night": 120.0}


@dataclass
class Measure:
    stage: str
    seconds: float
    rows: int
    peak_mb: float
    target_s: float | None = None

    def cells(self) -> list[str]:
        rate = f"{self.rows / self.seconds:,.0f}" if self.seconds else "-"
        verdict = "-" if self.target_s is None else (
            "PASS" if self.seconds <= self.target_s else "MISS")
        target = "-" if self.target_s is None else f"<= {self.target_s:,.0f} s"
        return [self.stage, f"{self.seconds:,.1f}", f"{self.rows:,}", rate,
                f"{self.peak_mb:,.0f}", target, verdict]


class PeakMemory:
    """Samples the RSS of this process and all its children (the Spark JVM) every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="medium", choices=["tiny", "small", "medium"],
                   help="world to generate (default medium: 100 stores x 1,000 SKUs)")
    p.add_argument("--days", type=int, default=None,
                   help="days to generate (default: the scenario's default, medium 730)")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: small scenario, 90 days")
    p.add_argument("--home", type=Path, default=None,
                   help="reuse (or create) this REPLENISH_HOME instead of a temporary one; a "
                   "world already generated there is reused")
    p.add_argument("--keep", action="store_true", help="keep the temporary home afterwards")
    p.add_argument("--out", default=str(RESULTS),
                   help="RESULTS.md to update ('-' to only print); default bench/RESULTS.md")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario, days = ("small", 90) if args.quick else (args.scenario, args.days)
    from jobs import build_features, generate, ingest
    from jobs.config import Config
    from jobs.lake import list_dates
    from jobs.spark import get_spark

    tmp = None
    home = args.home
    if home is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
        home = tmp
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = Config(home=home, spark_driver_memory="8g", spark_shuffle_partitions=8, pg_port=port)
    measures: list[Measure] = []
    try:
        if not (home / "world.json").exists():
            t0 = time.perf_counter()
            with PeakMemory() as mem:
                g = generate.run(cfg, scenario, dt.date(2024, 1, 1), days, seed=42)
            measures.append(Measure(f"generate {scenario}", time.perf_counter() - t0,
                                    sum(g.rows.values()), mem.peak))
        dates = list_dates(cfg.landing, "sales")
        first, last = dates[0], dates[-1]
        t0 = time.perf_counter()
        with PeakMemory() as mem:
            rows = 0
            for day in dates[:-1]:
                rows += sum(ingest.run(cfg, day).rows.values())
            clean_from_raw(cfg, dates[:-1])
        measures.append(Measure(f"ingest {len(dates) - 1} days (+ raw->clean copy)",
                                time.perf_counter() - t0, rows, mem.peak))

        get_spark(cfg, "bench-features")
        from jobs import validate

        t0 = time.perf_counter()
        with PeakMemory() as mem:
            rows = sum(ingest.run(cfg, last).rows.values())
            validate.run_raw(cfg, last)
        measures.append(Measure("ingest + validate_raw, one night", time.perf_counter() - t0,
                                rows, mem.peak))

        t0 = time.perf_counter()
        with PeakMemory() as mem:
            full = build_features.run(cfg, start=first, end=last)
        measures.append(Measure(f"features, full build {first}..{last}",
                                time.perf_counter() - t0, full.feature_rows, mem.peak,
                                TARGETS["full"] if scenario == "medium" else None))
        spark = get_spark(cfg)
        path = str(cfg.lake / "features" / f"date={last}")
        reference = spark.read.parquet(path).toPandas()

        t0 = time.perf_counter()
        with PeakMemory() as mem:
            night = build_features.run(cfg, run_date=last)
        measures.append(Measure(f"features, one night {last}", time.perf_counter() - t0,
                                night.feature_rows, mem.peak,
                                TARGETS["night"] if scenario == "medium" else None))
        again = spark.read.parquet(path).toPandas()
        keys = ["store_id", "sku_id"]
        same = reference.sort_values(keys).reset_index(drop=True).equals(
            again.sort_values(keys).reset_index(drop=True)[reference.columns])
    finally:
        from jobs import warehouse

        warehouse.stop(cfg)
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    info = machine()
    header = ["stage", "wall s", "rows", "rows/s", "peak MB (driver + JVM)", "target",
              "verdict"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(m.cells()) + " |" for m in measures]
    text = "\n".join([
        SECTION, "", f"Command: `{command()}` (from the repository root)", "",
        machine_line(info), "",
        f"Scenario `{scenario}`, {len(dates)} days, {full.feature_columns} feature-table "
        f"columns. Spark local[*], driver 8g; one task per chunk of at most "
        f"{build_features.CHUNK_DAYS} days (demand and features in numpy, Parquet written by "
        "pyarrow in the tasks).", "",
        *table, "",
        f"Incremental night equals the full build for {last}: {'yes' if same else 'NO'}.", ""])
    print(text)
    if args.out != "-":
        update_results(Path(args.out), text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
