#!/usr/bin/env python
"""Benchmark the synthetic world generator (``replenish generate``).

Each scenario runs as its own ``replenish generate --no-progress`` subprocess with a fresh
``REPLENISH_HOME`` under a work directory, so peak memory (the child's own ``ru_maxrss``,
collected with ``os.wait4``) and disk usage belong to that scenario alone. The script prints
one table with all scenarios side by side and replaces the "Generator" section of
``bench/RESULTS.md`` (other sections are kept).

The issue's target: ``medium`` (100 stores x 1,000 SKUs x 730 days) in at most 10 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS as DEFAULT_OUT  # noqa: E402
from common import command, machine, update_results  # noqa: E402

SECTION = "## Generator (`replenish generate`)"

# Sizes and default days, as in jobs/world.py SCENARIOS (checked against it at run time).
SCENARIOS = {"tiny": (4, 40, 120), "small": (10, 200, 365), "medium": (100, 1000, 730),
             "blinkit": (400, 8000, 365)}
QUICK_DAYS = {"tiny": 30, "small": 120, "medium": 60, "blinkit": 14}
TARGET_SCENARIO, TARGET_DAYS, TARGET_SECONDS = "medium", 730, 600.0


@dataclass
class Outcome:
    scenario: str
    days: int
    stores: int
    skus: int
    rows: dict
    wall_s: float          # parent-measured: process start to exit (imports included)
    gen_s: float           # the generator's own timer (jobs.generate.run)
    peak_rss_mb: float     # child's ru_maxrss from wait4
    disk_mb: float         # lake + truth on disk
    returncode: int
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def grid(self) -> int:
        return self.stores * self.skus * self.days

    @property
    def pair_days(self) -> int:
        # One inventory snapshot per active store x SKU pair per day.
        return self.rows.get("inventory", 0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/bench_generate.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog="columns of the table:\n"
               "  pairs x days      active store x SKU pair-days written (= inventory rows)\n"
               "  rows total        rows of every table written, ground truth included\n"
               "  sales lines       rows of the sales table (transaction lines)\n"
               "  wall s            subprocess start to exit, interpreter start-up included\n"
               "  rows/s            rows total / wall s\n"
               "  grid/s            stores x SKUs x days / wall s\n"
               "  peak RSS MB       the child's maximum resident set size\n"
               "  lake MB           disk usage (du) of $REPLENISH_HOME/lake + truth\n"
               f"  target            {TARGET_SCENARIO} at {TARGET_DAYS} days in <= "
               f"{TARGET_SECONDS / 60:.0f} min: PASS/MISS;\n"
               "                    with fewer days, a linear projection marked 'proj.'\n\n"
               "examples:\n"
               "  .venv/bin/python bench/bench_generate.py            # small 365 + medium 730\n"
               "  .venv/bin/python bench/bench_generate.py --quick    # small 120 + medium 60\n"
               "  .venv/bin/python bench/bench_generate.py --scenarios tiny --days 30 --out -")
    p.add_argument("--scenarios", default="small,medium", type=_scenario_list,
                   help="comma-separated scenarios to run, in order, from "
                        f"{', '.join(SCENARIOS)} (default: small,medium)")
    days = p.add_mutually_exclusive_group()
    days.add_argument("--days", type=int, default=None,
                      help="simulate this many days in every scenario (default: each "
                           "scenario's own default: " + ", ".join(
                               f"{k} {v[2]}" for k, v in SCENARIOS.items()) + ")")
    days.add_argument("--quick", action="store_true",
                      help="short runs for a smoke check: " + ", ".join(
                          f"{k} {v}" for k, v in QUICK_DAYS.items()) + " days")
    p.add_argument("--seed", type=int, default=42, help="world seed (default 42)")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="markdown file whose generator section is created or replaced "
                        "(default: bench/RESULTS.md); '-' to only print")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where each scenario's REPLENISH_HOME is made (<workdir>/<scenario>); "
                        "default: a new temporary directory. The scenario homes are deleted "
                        "afterwards unless --keep")
    p.add_argument("--keep", action="store_true",
                   help="keep the generated worlds (and the child logs) in the workdir")
    return p


def _scenario_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SCENARIOS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
    return names


def _replenish_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "replenish"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("replenish")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from jobs.cli import main; sys.exit(main())"]


def _disk_mb(*roots: Path) -> float:
    """Like ``du -s``: allocated blocks, not apparent sizes."""
    total = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total / 2**20


def _run_one(scenario: str, days: int, seed: int, home: Path) -> Outcome:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = dict(os.environ, REPLENISH_HOME=str(home))
    cmd = _replenish_cmd() + ["generate", "--scenario", scenario, "--days", str(days),
                              "--seed", str(seed), "--no-progress"]
    log = home.parent / f"{scenario}.log"
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=fh, stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be a max over children).
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    stores, skus, _ = SCENARIOS[scenario]
    rows, gen_s = {}, float("nan")
    manifest = home / "world.json"
    if proc.returncode == 0 and manifest.exists():
        data = json.loads(manifest.read_text())
        rows, gen_s = data["rows"], float(data["seconds"])
        stores, skus = int(data["stores"]), int(data["skus"])
    return Outcome(scenario, days, stores, skus, rows, wall, gen_s,
                   usage.ru_maxrss / 1024.0, _disk_mb(home / "lake", home / "truth"),
                   proc.returncode, log)


def _target(o: Outcome) -> str:
    if o.scenario != TARGET_SCENARIO:
        return "-"
    if not o.ok:
        return "MISS (failed)"
    if o.days >= TARGET_DAYS:
        return "PASS" if o.wall_s <= TARGET_SECONDS else "MISS"
    projected = o.wall_s / o.days * TARGET_DAYS
    verdict = "PASS" if projected <= TARGET_SECONDS else "MISS"
    return f"{verdict} (proj. {projected:,.0f} s)"


HEAD = ("scenario", "stores", "SKUs", "days", "pairs x days", "rows total", "sales lines",
        "wall s", "rows/s", "grid/s", "peak RSS MB", "lake MB", f"target <= "
        f"{TARGET_SECONDS / 60:.0f} min")


def _cells(o: Outcome) -> tuple[str, ...]:
    if not o.ok:
        return (o.scenario, f"{o.stores:,}", f"{o.skus:,}", str(o.days), "FAILED",
                f"exit {o.returncode}", "-", f"{o.wall_s:,.1f}", "-", "-",
                f"{o.peak_rss_mb:,.0f}", f"{o.disk_mb:,.0f}", _target(o))
    return (o.scenario, f"{o.stores:,}", f"{o.skus:,}", str(o.days), f"{o.pair_days:,}",
            f"{o.total_rows:,}", f"{o.rows.get('sales', 0):,}", f"{o.wall_s:,.1f}",
            f"{o.total_rows / o.wall_s:,.0f}", f"{o.grid / o.wall_s:,.0f}",
            f"{o.peak_rss_mb:,.0f}", f"{o.disk_mb:,.0f}", _target(o))


def _markdown_table(outcomes: list[Outcome]) -> str:
    rows = [HEAD] + [_cells(o) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    left = {0}

    def line(r):
        return "| " + " | ".join(c.ljust(w) if i in left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths, strict=False))) + " |"
    sep = "|" + "|".join((":" + "-" * (w + 1)) if i in left else ("-" * (w + 1) + ":")
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def _section(outcomes: list[Outcome], machine: dict[str, str], command: str) -> str:
    failed = [o for o in outcomes if not o.ok]
    tgt = [o for o in outcomes if o.scenario == TARGET_SCENARIO]
    parts = [
        SECTION, "",
        f"Command: `{command}` (from the repository root)", "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, "
        f"Python {machine['python']}, {machine['arch']}. Date: {machine['date']} (UTC).", "",
        "Each scenario is one `replenish generate --no-progress` subprocess with a fresh "
        "`REPLENISH_HOME`. *pairs x days* = active store x SKU pair-days (inventory rows); "
        "*rows total* = every table written, ground truth included; *wall s* = subprocess "
        "start to exit; *grid/s* = stores x SKUs x days per wall second; *peak RSS* = the "
        "child's `ru_maxrss`; *lake MB* = du of lake + truth. "
        f"Target: `{TARGET_SCENARIO}` ({TARGET_DAYS} days) in <= "
        f"{TARGET_SECONDS / 60:.0f} minutes.", "",
        _markdown_table(outcomes), "",
    ]
    if tgt:
        parts += [f"Target ({TARGET_SCENARIO}, {TARGET_DAYS} days, <= "
                  f"{TARGET_SECONDS:.0f} s): " + "; ".join(
                      f"{_target(o)} at {o.days} days in {o.wall_s:,.1f} s" for o in tgt), ""]
    if failed:
        parts += ["Failed: " + ", ".join(f"{o.scenario} (exit {o.returncode})"
                                         for o in failed), ""]
    return "\n".join(parts)


def _check_scenarios() -> None:
    """Take sizes and default days from jobs/world.py when it is importable."""
    try:
        from jobs.world import SCENARIOS as REAL
    except ImportError:  # the CLI subprocess will still run; sizes come from its manifest
        return
    for name, (st, sk, days) in SCENARIOS.items():
        sc = REAL.get(name)
        if sc is not None and (sc.n_stores, sc.n_skus, sc.default_days) != (st, sk, days):
            SCENARIOS[name] = (sc.n_stores, sc.n_skus, sc.default_days)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check_scenarios()
    if args.days is not None and args.days < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 2
    plan = [(s, args.days if args.days else QUICK_DAYS[s] if args.quick else SCENARIOS[s][2])
            for s in args.scenarios]
    made_tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-")) if made_tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(workdir).free / 2**30
    print(f"workdir {workdir} ({free_gb:,.1f} GiB free); running "
          + ", ".join(f"{s} {d} days" for s, d in plan), flush=True)
    outcomes: list[Outcome] = []
    try:
        for scenario, days in plan:
            print(f"-> {scenario}: {days} days ...", flush=True)
            o = _run_one(scenario, days, args.seed, workdir / scenario)
            outcomes.append(o)
            if o.ok:
                print(f"   done in {o.wall_s:,.1f} s (generator {o.gen_s:,.1f} s), "
                      f"{o.total_rows:,} rows, peak RSS {o.peak_rss_mb:,.0f} MB, "
                      f"{o.disk_mb:,.0f} MB on disk", flush=True)
            else:
                tail = o.log.read_text(errors="replace").splitlines()[-20:]
                print(f"   FAILED (exit {o.returncode}); last lines of {o.log}:\n      "
                      + "\n      ".join(tail), flush=True)
            if not args.keep:
                shutil.rmtree(workdir / scenario, ignore_errors=True)
    finally:
        if not args.keep:
            for scenario, _ in plan:
                shutil.rmtree(workdir / scenario, ignore_errors=True)
                if not any(not o.ok and o.scenario == scenario for o in outcomes):
                    (workdir / f"{scenario}.log").unlink(missing_ok=True)
            if made_tmp and not any(workdir.iterdir()):
                workdir.rmdir()

    info = machine()
    print()
    print(f"replenish generate: {info['nproc']} CPUs, {info['memory']} RAM, "
          f"Python {info['python']}, {info['arch']}, {info['date']}")
    print(_markdown_table(outcomes))
    if args.out != "-":
        out = Path(args.out)
        update_results(out, _section(outcomes, info, command()))
        print(f"\nwrote section {SECTION!r} to {out}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
