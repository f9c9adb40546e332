#!/usr/bin/env python
"""Benchmark the model half of the nightly pipeline: ``cluster``, ``train`` and ``score``.

Three parts, each on its own temporary ``REPLENISH_HOME`` (deleted afterwards):

1. **Generated world** (``small``, 365 days; ``--quick``: ``tiny``, 150 days, quick profile):
   ingest every date, copy raw -> clean (as ``bench_features.py`` does), one feature build
   over the window, ``cluster`` and ``train`` on the last date. Times the ``train`` step
   (backtest + final fit + MLflow + gate) and prints its backtest: every model's WAPE, RMSSE,
   MAPE, bias, pinball q50/q95, coverage q80/q95 and business cost, the oracle (the
   generator's expected demand) included, and WAPE per horizon. Targets (issue 4): train
   <= 15 minutes; ensemble WAPE <= 1.15 x the oracle's, >= 25% below seasonal naive's and
   below every member's; coverage of q80 within 75-85%.
2. **Store Item Demand** (the public Kaggle set, ``replenish import store-item``): the last
   ``--si-days`` days of ``train.csv`` for a subset of stores and items, the same steps, with
   ``n_cutoffs = 4`` so the backtest's evaluation origins are the last 4 weeks of
   ``train.csv`` (the ``validation_origins`` origins before them only validate the ensemble
   weights). Same table, no oracle.
3. **Scoring speed** on ``medium`` (100 stores x 1,000 SKUs): a generated medium world of
   ``--medium-days`` days with its features (or the features of an existing world,
   ``--medium-from``, read only, copied); ``cluster`` and ``train`` on a sample of series
   (``--medium-series``; ``--medium-profile``, default ``quick`` to keep the run short), then
   ``score`` of every active pair x 7 days, timed. Target: <= 3 minutes.
   ``--quick`` times ``score`` on part 1's world instead.

Results go to the "Models" section of ``bench/RESULTS.md``, plots to ``bench/plots/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import PeakMemory  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    LoadSampler,
    clean_from_raw,  # noqa: E402
    command,
    machine,
    machine_line,
    md_table,
    update_results,
)

SECTION = "## Models (`replenish run cluster` / `train` / `score`)"
STORE_ITEM_ZIP = Path("/work/shared/data/store-item-demand.zip")
TARGETS = {"train_s": 900.0, "score_s": 180.0, "oracle_ratio": 1.15, "naive_gain": 0.25,
           "cov80": (0.75, 0.85)}
MEMBERS = ("xgboost", "lstm", "prophet", "arima", "tsb")
BASELINES = ("seasonal_naive", "moving_average")
METRICS = [("wape", "WAPE mean"), ("wape_q50", "WAPE q50"), ("rmsse", "RMSSE"), ("mape", "MAPE"), ("bias", "bias"),
           ("pinball_q50", "pinball q50"), ("pinball_q95", "pinball q95"),
           ("coverage_q80", "cov q80"), ("coverage_q95", "cov q95"),
           ("business_cost", "business cost")]

log = logging.getLogger("bench_models")


# ------------------------------------------------------------------------------ results
@dataclass
class Part:
    """What one world produced: timings, the backtest and the verdicts."""

    name: str
    describe: str
    stages: list[tuple[str, float, str]] = field(default_factory=list)  # stage, s, note
    overall: pd.DataFrame | None = None
    by_horizon: pd.DataFrame | None = None
    fit_seconds: dict[str, float] = field(default_factory=dict)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    cutoffs: str = ""
    n_series: int = 0
    validation_origins: int = 1
    plots: list[Path] = field(default_factory=list)

    def timed(self, stage: str, seconds: float, note: str = "") -> None:
        self.stages.append((stage, seconds, note))
        _say(f"{self.name}: {stage}: {seconds:,.1f} s {note}")


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _num(v: object, kind: str = "") -> str:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    if kind in ("wape", "wape_q50", "mape", "bias") or kind.startswith("coverage"):
        return f"{x:.1%}" if kind != "bias" else f"{x:+.1%}"
    if kind == "business_cost":
        return f"{x:,.0f}"
    return f"{x:.3f}"


# ------------------------------------------------------------------------------ worlds
def _cfg(home: Path, profile: str, max_series: int):
    from jobs.config import Config

    with socket.socket() as sock:  # a free port: never touch another home's PostgreSQL
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Config(home=home, spark_driver_memory="3g", spark_shuffle_partitions=4,
                  pg_port=port, model_profile=profile, max_series=max_series)


def _stop_spark() -> None:
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover
        return
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()


def _features_from_landing(cfg, part: Part) -> dt.date:
    """ingest every landing date, raw -> clean copy, one feature build; the last date."""
    from jobs import build_features, ingest
    from jobs.lake import list_dates

    dates = list_dates(cfg.landing, "sales")
    t0 = time.perf_counter()
    for day in dates:
        ingest.run(cfg, day)
    clean_from_raw(cfg, dates)
    part.timed(f"ingest {len(dates)} days + raw->clean copy", time.perf_counter() - t0)
    t0 = time.perf_counter()
    res = build_features.run(cfg, start=dates[0], end=dates[-1])
    part.timed(f"build_features {dates[0]}..{dates[-1]}", time.perf_counter() - t0,
               f"({res.feature_rows:,} rows)")
    _stop_spark()
    return dates[-1]


def _generated(cfg, scenario: str, days: int, part: Part) -> dt.date:
    from jobs import generate

    t0 = time.perf_counter()
    generate.run(cfg, scenario, dt.date(2024, 1, 1), days, seed=42, progress=False)
    part.timed(f"generate {scenario} {days} days", time.perf_counter() - t0)
    return _features_from_landing(cfg, part)


def _store_item(cfg, days: int, stores: list[int] | None, items: list[int] | None,
                part: Part) -> dt.date:
    from jobs import importer

    end = dt.date(2017, 12, 31)  # the last date of train.csv
    t0 = time.perf_counter()
    res = importer.run(cfg, STORE_ITEM_ZIP, start=end - dt.timedelta(days=days - 1), end=end,
                       stores=stores, items=items, progress=False)
    part.timed("import store-item", time.perf_counter() - t0,
               f"({res.stores} stores x {res.skus} items, {res.rows_written:,} rows)")
    return _features_from_landing(cfg, part)


def _copy_medium(src: Path, home: Path, days: int, part: Part) -> dt.date:
    """Copy the last ``days`` feature partitions (and what cluster/train/score read) of an
    existing world; ``src`` is only read."""
    from jobs.cluster import CLUSTER_DAYS
    from jobs.lake import list_dates

    lake = src / "lake"
    dates = list_dates(lake, "features")
    if not dates:
        raise FileNotFoundError(f"{src}: no lake/features")
    keep = dates[-days:]
    t0 = time.perf_counter()
    for table, want in (("features", keep), ("demand_daily", keep[-CLUSTER_DAYS:])):
        for day in want:
            shutil.copytree(lake / table / f"date={day}", home / "lake" / table / f"date={day}")
    for table in ("stores", "skus", "calendar"):
        shutil.copytree(lake / "clean" / table, home / "lake" / "clean" / table)
    part.timed(f"copy {len(keep)} days of features from {src}", time.perf_counter() - t0)
    return keep[-1]


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _fingerprint(src: Path) -> tuple[int, float]:
    files = list((src / "lake" / "features").rglob("*.parquet"))
    return len(files), max((f.stat().st_mtime for f in files), default=0.0)


def _stable(src: Path, wait_s: float = 1800.0) -> bool:
    """True once ``src``'s features have not changed for a minute (waits up to ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        before = _fingerprint(src)
        if before[0] and time.time() - before[1] > 60:
            time.sleep(5)
            if _fingerprint(src) == before:
                return True
        _say(f"medium: {src} features are being written; waiting")
        time.sleep(60)
    return False


# ------------------------------------------------------------------------------ steps
def _train(cfg, run_date: dt.date, part: Part, ens=None, target_s: float | None = None):
    from jobs import cluster, train
    from jobs.lake import read_partition

    t0 = time.perf_counter()
    c = cluster.run(cfg, run_date)
    part.timed("cluster", time.perf_counter() - t0, f"(k={c.k})")
    t0, c0 = time.perf_counter(), _cpu_seconds()
    with PeakMemory() as mem:
        res = train.run(cfg, run_date, ens=ens)
    part.validation_origins = (ens or train.ensemble_config(cfg)).validation_origins
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    part.timed(f"train ({cfg.model_profile} profile)", seconds,
               f"(CPU {cpu:,.0f} s; peak {mem.peak:,.0f} MB; version {res.version} "
               f"@{res.alias})")
    if target_s is not None:
        part.verdicts.append((f"train + backtest <= {target_s / 60:.0f} min",
                              f"{seconds / 60:.1f} min", f"<= {target_s / 60:.0f} min",
                              _pf(seconds <= target_s, seconds / target_s - 1, "slower")))
    part.overall = res.overall.copy()
    part.flags = res.flags
    metrics = read_partition(cfg.lake, "backtest_metrics", run_date).to_pandas()
    part.by_horizon = metrics.loc[metrics["grouping"] == "horizon"].assign(
        horizon=lambda d: d["horizon"].astype(float).astype(int))
    cutoffs = metrics.loc[metrics["grouping"] == "cutoff", "cutoff"].unique()
    part.cutoffs = ", ".join(sorted(str(pd.Timestamp(c).date()) for c in cutoffs))
    part.fit_seconds = _fit_seconds(cfg, res.run_id)
    part.n_series = int(_param(cfg, res.run_id, "n_series") or 0)
    return res


def _param(cfg, run_id: str, name: str) -> str | None:
    from models import registry

    return registry.client(cfg.mlflow_uri).get_run(run_id).data.params.get(name)


def _fit_seconds(cfg, run_id: str) -> dict[str, float]:
    """Mean fit + forecast seconds per backtest origin, per model (from the child runs)."""
    from models import registry

    c = registry.client(cfg.mlflow_uri)
    parent = c.get_run(run_id)
    runs = c.search_runs([parent.info.experiment_id],
                         filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    return {r.data.tags.get("model", r.info.run_name): r.data.metrics["backtest_fit_seconds"]
            for r in runs if "backtest_fit_seconds" in r.data.metrics}


def _score(cfg, run_date: dt.date, part: Part, target_s: float | None) -> None:
    from jobs import score

    t0, c0 = time.perf_counter(), _cpu_seconds()
    with PeakMemory() as mem:
        res = score.run(cfg, run_date)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    note = (f"({res.pairs:,} pairs, {res.rows:,} rows by {res.model}; chunks of "
            f"{cfg.score_chunk_pairs:,} pairs; CPU {cpu:,.0f} s; peak {mem.peak:,.0f} MB"
            + (f"; FALLBACK {res.fallback}" if res.fallback else "") + ")")
    part.timed("score, every active pair x 7 days", seconds, note)
    if res.member_flags:
        part.flags = (*part.flags, *(f"score: {f}" for f in res.member_flags))
    if target_s is not None:
        ok = seconds <= target_s and res.model == "ensemble"
        part.verdicts.append((f"score {res.pairs:,} pairs x 7 days <= {target_s / 60:.0f} min",
                              f"{seconds:,.0f} s ({res.model})", f"<= {target_s:,.0f} s",
                              _pf(ok, seconds / target_s - 1, "slower")))


# ------------------------------------------------------------------------------ verdicts
def _pf(ok: bool, miss: float, word: str) -> str:
    return "PASS" if ok else f"MISS ({miss:+.0%} {word})" if math.isfinite(miss) else "MISS"


def _score_of(overall: pd.DataFrame, model: str, metric: str) -> float:
    row = overall.loc[overall["model"] == model, metric]
    return float(row.iloc[0]) if len(row) else float("nan")


def _point(overall: pd.DataFrame) -> tuple[str, str]:
    """(metric, label) of the point forecast the accuracy checks compare: each model's median
    forecast (``q50``, ``wape_q50``) when every model has one, else its mean."""
    if "wape_q50" in overall.columns and overall["wape_q50"].notna().all():
        return "wape_q50", "WAPE of q50"
    return "wape", "WAPE of mean"


def _best_member(overall: pd.DataFrame) -> str | None:
    key, _ = _point(overall)
    m = overall.loc[overall["model"].isin(MEMBERS)].sort_values(key)
    return str(m["model"].iloc[0]) if len(m) else None


def _accuracy_verdicts(part: Part, with_oracle: bool) -> None:
    o = part.overall
    assert o is not None
    key, label = _point(o)
    ens = _score_of(o, "ensemble", key)
    if with_oracle:
        ora = _score_of(o, "oracle", key)
        r = ens / ora
        part.verdicts.append((f"ensemble {label} <= 1.15 x oracle",
                              f"{ens:.1%} vs {ora:.1%} = {r:.2f}x", "<= 1.15x",
                              _pf(r <= TARGETS["oracle_ratio"], r / 1.15 - 1, "over")))
    naive = _score_of(o, "seasonal_naive", key)
    gain = 1 - ens / naive
    part.verdicts.append((f"ensemble >= 25% better than seasonal naive ({label})",
                          f"{ens:.1%} vs {naive:.1%}: {gain:.1%} better", ">= 25%",
                          "PASS" if gain >= TARGETS["naive_gain"] else
                          f"MISS ({(TARGETS['naive_gain'] - gain) * 100:.1f} points short)"))
    for m in MEMBERS:
        w = _score_of(o, m, key)
        if math.isfinite(w):
            part.verdicts.append((f"ensemble {label} < {m}", f"{ens:.1%} vs {w:.1%}", "<",
                                  _pf(ens < w, ens / w - 1, "over")))
        else:
            part.verdicts.append((f"ensemble {label} < {m}", "member missing", "<", "MISS"))
    cov = _score_of(o, "ensemble", "coverage_q80")
    lo, hi = TARGETS["cov80"]
    off = (lo - cov) if cov < lo else (cov - hi)
    part.verdicts.append(("ensemble coverage of q80 in 75-85%", f"{cov:.1%}", "75-85%",
                          "PASS" if lo <= cov <= hi else
                          f"MISS ({off * 100:.1f} points {'under' if cov < lo else 'over'})"))


# ------------------------------------------------------------------------------ tables
def _order(overall: pd.DataFrame) -> list[str]:
    names = list(overall["model"])
    first = [m for m in ("oracle", "ensemble", *MEMBERS, *BASELINES) if m in names]
    return first + [m for m in names if m not in first]


def _backtest_table(part: Part) -> list[str]:
    o = part.overall
    assert o is not None
    header = ["model", "rows", *[label for _, label in METRICS], "fit+forecast s/origin"]
    rows = []
    for m in _order(o):
        r = o.loc[o["model"] == m].iloc[0]
        name = f"**{m}**" if m == "ensemble" else m
        rows.append([name, f"{int(r['n']):,}", *[_num(r.get(k), k) for k, _ in METRICS],
                     _num(part.fit_seconds.get(m), "s")])
    return md_table(header, rows)


def _horizon_table(part: Part) -> list[str]:
    o, bh = part.overall, part.by_horizon
    assert o is not None and bh is not None
    best = _best_member(o)
    key, _ = _point(o)
    models = [m for m in ("ensemble", best, "seasonal_naive") if m]
    labels = {"ensemble": "ensemble", "seasonal_naive": "seasonal naive"}
    header = ["horizon (days ahead)", *[labels.get(m, f"best member ({m})") for m in models]]
    rows = []
    for h in sorted(bh["horizon"].unique()):
        cells = [str(h)]
        for m in models:
            v = bh.loc[(bh["model"] == m) & (bh["horizon"] == h), key]
            cells.append(_num(v.iloc[0], "wape") if len(v) else "-")
        rows.append(cells)
    return md_table(header, rows)


def _plots(part: Part, folder: Path | None, slug: str) -> None:
    """Two small PNGs per part in ``folder`` (none when ``folder`` is None)."""
    if folder is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    o, bh = part.overall, part.by_horizon
    assert o is not None and bh is not None
    folder.mkdir(parents=True, exist_ok=True)
    order = _order(o)
    key, label = _point(o)
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    wape = [_score_of(o, m, key) for m in order]
    colors = ["tab:green" if m == "oracle" else "tab:red" if m == "ensemble" else
              "tab:gray" if m in BASELINES else "tab:blue" for m in order]
    ax.bar(order, wape, color=colors)
    for value, line, style in ((1.15 * _score_of(o, "oracle", key), "1.15 x oracle", ":"),
                               (0.75 * _score_of(o, "seasonal_naive", key),
                                "0.75 x seasonal naive", "--")):
        if math.isfinite(value):
            ax.axhline(value, color="k", lw=0.8, ls=style, label=line)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_ylabel(label)
    title = part.name.replace("`", "")
    ax.set_title(f"{title}: backtest {label}", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    path = folder / f"models_{slug}_wape.png"
    fig.savefig(path)
    plt.close(fig)
    part.plots.append(path)
    best = _best_member(o)
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    for m in [x for x in ("ensemble", best, "seasonal_naive", "oracle") if x]:
        d = bh.loc[bh["model"] == m].sort_values("horizon")
        if len(d):
            ax.plot(d["horizon"], d[key], "o-", label=m)
    ax.set_xlabel("days ahead")
    ax.set_ylabel(label)
    ax.set_title(f"{title}: {label} per horizon", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / f"models_{slug}_horizon.png"
    fig.savefig(path)
    plt.close(fig)
    part.plots.append(path)


def _part_text(part: Part, with_backtest: bool) -> list[str]:
    lines = [f"### {part.name}", "", part.describe, ""]
    lines += md_table(["stage", "wall s", "note"],
                 [[s, f"{t:,.1f}", n] for s, t, n in part.stages], ":---|---:|:---")
    lines.append("")
    if with_backtest and part.overall is not None:
        lines += [f"Backtest: {part.n_series:,} series; evaluation origins {part.cutoffs} "
                  "(each forecasts the 7 days after it; the "
                  f"{part.validation_origins} weekly origin(s) before them only learn the "
                  "ensemble weights). Metrics over all scored store x SKU x day "
                  "rows of the evaluation window; coverage = share of actuals <= the "
                  "quantile. WAPE mean = WAPE of each model's `mean` column; WAPE q50 = "
                  "WAPE of its `q50` column, the median forecast `score` writes next to the "
                  "mean (for the oracle: the median of the generator's true negative "
                  "binomial, from `truth/demand`'s expected_demand and nb_dispersion). WAPE "
                  "is an L1 loss, minimised by the median, so the accuracy checks below "
                  f"compare every model's {_point(part.overall)[1]}, the same column for "
                  "every row; bias and the business cost use the mean.", ""]
        lines += _backtest_table(part) + [""]
        lines += [f"{_point(part.overall)[1]} per horizon:", ""] + _horizon_table(part) + [""]
        lines += [f"![{p.stem}](plots/{p.name})" for p in part.plots] + [""]
    if part.verdicts:
        lines += md_table(["check", "measured", "target", "verdict"],
                     [list(v) for v in part.verdicts], ":---|---:|---:|:---") + [""]
    if part.flags:
        lines += ["Flags raised:", ""] + [f"- {f}" for f in part.flags] + [""]
    return lines


# ------------------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: tiny 150 days, a small store-item subset, the quick "
                   "profile, scoring timed on the tiny world")
    p.add_argument("--parts", default="generated,store-item,medium",
                   help="comma-separated parts to run (default all: generated,store-item,medium)")
    p.add_argument("--si-days", type=int, default=200,
                   help="store-item: last days of train.csv to import (default 200)")
    p.add_argument("--si-stores", default="1,2",
                   help="store-item: stores to keep (default 1,2; 'all' for all 10)")
    p.add_argument("--si-items", default="all",
                   help="store-item: items to keep (default all 50)")
    p.add_argument("--medium-from", type=Path, default=None,
                   help="reuse the features of an existing medium world (only read: its last "
                   "--medium-days days are copied); default: generate a medium world of "
                   "--medium-days days and build its features")
    p.add_argument("--medium-days", type=int, default=150,
                   help="days of medium features to use (>= 148 for the full profile)")
    p.add_argument("--medium-series", type=int, default=2000,
                   help="series sampled to train the medium model (max_series; default 2000; "
                   "the quick profile caps it at 1,500)")
    p.add_argument("--medium-profile", default="quick", choices=["quick", "full"],
                   help="profile of the model trained to score medium (default quick: a "
                   "full-profile train on medium takes ~40 min on 2 busy CPUs)")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    p.add_argument("--out", default=str(RESULTS),
                   help="RESULTS.md to update ('-' to only print); default bench/RESULTS.md")
    return p


def _ids(text: str) -> list[int] | None:
    return None if text == "all" else [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still delete the temp homes
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("cmdstanpy", "prophet", "py4j", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    parts_wanted = set(args.parts.split(","))
    quick = args.quick
    profile = "quick" if quick else "full"
    temps: list[Path] = []
    parts: list[Part] = []
    started = time.perf_counter()
    plots = None if args.out == "-" else Path(args.out).parent / "plots"

    def home(tag: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bench-models-{tag}-"))
        temps.append(path)
        return path

    load = LoadSampler().start()
    try:
        if "generated" in parts_wanted:
            scenario, days = ("tiny", 150) if quick else ("small", 365)
            part = Part(f"Generated `{scenario}`, {days} days", "")
            cfg = _cfg(home(scenario), profile, 5000)
            last = _generated(cfg, scenario, days, part)
            from jobs.train import ensemble_config

            ens = ensemble_config(cfg)
            part.describe = (f"`replenish generate --scenario {scenario} --days {days} "
                             f"--seed 42` from 2024-01-01; `cluster` and `train` on {last} "
                             f"with the `{profile}` profile (train_days {ens.train_days}, "
                             f"n_cutoffs {ens.n_cutoffs}, validation_origins "
                             f"{ens.validation_origins}, max_series {ens.max_series:,}, "
                             f"XGBoost {ens.xgb_rounds} rounds, LSTM {ens.lstm_epochs} "
                             "epochs). The oracle is the generator's expected demand.")
            _train(cfg, last, part, target_s=None if quick else TARGETS["train_s"])
            _accuracy_verdicts(part, with_oracle=True)
            _plots(part, plots, "quick" if quick else "small")
            if quick:
                _score(cfg, last, part, target_s=None)
            parts.append(part)

        if "store-item" in parts_wanted:
            days, stores, items = ((150, [1, 2], list(range(1, 11))) if quick else
                                   (args.si_days, _ids(args.si_stores), _ids(args.si_items)))
            part = Part("Store Item Demand (public data)", "")
            cfg = _cfg(home("store-item"), profile, 5000)
            last = _store_item(cfg, days, stores, items, part)
            from jobs.train import ensemble_config

            ens = dataclasses.replace(ensemble_config(cfg), n_cutoffs=4)
            sel = (f"stores {'all' if stores is None else ','.join(map(str, stores))}, "
                   f"items {'all' if items is None else f'{min(items)}-{max(items)}'}")
            part.describe = (f"`replenish import store-item` of the last {days} days of "
                             f"`train.csv` (to {last}), {sel}; `cluster` and `train` on "
                             f"{last} with the `{profile}` profile and n_cutoffs = 4. The "
                             "data has no promotions, weather, festivals, stock or prices "
                             "(documented constants), so only calendar and history features "
                             "carry signal; no oracle.")
            _train(cfg, last, part, ens=ens)
            _accuracy_verdicts(part, with_oracle=False)
            _plots(part, plots, "store_item_quick" if quick else "store_item")
            parts.append(part)

        if "medium" in parts_wanted and not quick:
            part = Part("Scoring `medium` (100 stores x 1,000 SKUs)", "")
            h = home("medium")
            cfg = _cfg(h, args.medium_profile, args.medium_series)
            src = args.medium_from
            if src is not None and (src / "lake" / "features").is_dir() and _stable(src):
                last = _copy_medium(src, h, args.medium_days, part)
                origin = f"The last {args.medium_days} days of features copied from `{src}`"
            else:
                last = _generated(cfg, "medium", args.medium_days, part)
                origin = f"A generated medium world of {args.medium_days} days"
            from jobs.train import ensemble_config

            ens = dataclasses.replace(ensemble_config(cfg), n_cutoffs=1)
            part.describe = (f"{origin}; `cluster`, then `train` with the "
                             f"`{args.medium_profile}` profile (XGBoost {ens.xgb_rounds} "
                             f"rounds, LSTM hidden {ens.lstm_hidden}) and n_cutoffs = 1 (the "
                             "backtest is not measured here; both only to keep the benchmark "
                             f"short) on a seeded sample of {ens.max_series:,} series, then "
                             f"`score` of every pair active on {last} with that champion.")
            _train(cfg, last, part, ens=ens)
            part.overall = None  # the sample's backtest is not the point here
            _score(cfg, last, part, target_s=TARGETS["score_s"])
            parts.append(part)
    finally:
        load.stop()
        _stop_spark()
        if not args.keep:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True)
        else:
            _say("kept: " + ", ".join(map(str, temps)))

    total = time.perf_counter() - started
    info = machine()
    mean_load = sum(load.samples) / max(len(load.samples), 1)
    text = [SECTION, "", f"Command: `{command()}` (from the repository root)", "",
            machine_line(info), "",
            f"Total wall time {total / 60:.1f} min. The machine's 1-minute load average "
            f"during the run: mean {mean_load:.1f}, max {max(load.samples, default=0):.1f} "
            f"on {info['nproc']} CPUs (above {info['nproc']}: other work competed for the "
            "CPUs, so wall times are pessimistic; the train/score rows give this process's "
            "own CPU seconds).", ""]
    for part in parts:
        text += _part_text(part, with_backtest=part.overall is not None)
    out = "\n".join(text)
    print(out)
    if args.out != "-":
        update_results(Path(args.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
