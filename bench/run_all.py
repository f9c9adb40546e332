#!/usr/bin/env python
"""Run every benchmark in ``bench/`` in sequence, within a time budget, and summarise.

What ``make bench`` runs (``make bench QUICK=1``: ``--quick``). Each script runs as its own
subprocess (its own process group) with its output shown as it comes and kept in a log; each
updates its own section of ``bench/RESULTS.md``. A script that is not there yet is skipped
with a message; ``--quick`` is passed only to scripts whose ``--help`` offers it. A script
gets at most its own cap and never more than what is left of ``--budget``: past that it is
stopped (SIGTERM to its process group, then SIGKILL) and reported as TIMEOUT, and the scripts
after it are skipped.

A full run makes the 730-day ``medium`` world once: ``bench_generate`` keeps the world it
timed in a shared folder, ``bench_features`` ingests it and builds its features in place, and
``bench_models`` scores a copy of its last days (each falls back to its own world when the
one before it did not run cleanly). ``bench_peers`` samples 500 series there to stay within
its cap. Run alone, every script makes its own worlds.

At the end the runner prints, and writes to the "Summary (`make bench`)" section of
``RESULTS.md``, one line per script (status, wall time) and every PASS/MISS line the
scripts printed (``common.verdict_lines``), with the machine, the date and the load average
during the run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    REPO,
    RESULTS,
    LoadSampler,
    command,
    machine,
    machine_line,
    md_table,
    stop_group,
    update_results,
    verdict_lines,
)

SECTION = "## Summary (`make bench`)"
BENCH = REPO / "bench"


def _no_share(_: Path) -> list[str]:
    return []


@dataclass(frozen=True)
class Script:
    name: str
    cap_min: float        # at most this many minutes (full run)
    quick_cap_min: float  # with --quick
    what: str
    #: extra arguments of a full run, given the run's shared folder: how the scripts share
    #: the one 730-day medium world instead of each generating (and featurising) its own
    shared: Callable[[Path], list[str]] = _no_share


#: The shared medium world: ``bench_generate`` keeps what it generated under ``<shared>/``,
#: ``bench_features`` builds its features in place, and ``bench_models`` scores its copy.
#: Only in a full run (``--quick`` scripts use worlds of different sizes).
def _medium(shared: Path) -> Path:
    return shared / "medium"


#: In order. Caps: a full run of all of them fits an hour on 2 quiet CPUs (see README).
SCRIPTS: tuple[Script, ...] = (
    Script("bench_generate.py", 6, 3, "generator: small and medium worlds",
           lambda d: ["--workdir", str(d), "--keep"]),
    Script("bench_features.py", 9, 4, "ingest, validate, features on medium",
           lambda d: ["--home", str(_medium(d))]),
    Script("bench_models.py", 20, 5, "train + backtest on small and store-item, score medium",
           lambda d: ["--medium-from", str(_medium(d))]),
    Script("bench_plan.py", 10, 4, "8,000-SKU store, medium plan CBC vs HiGHS, simulator on small"),
    Script("bench_peers.py", 10, 5, "accuracy vs statsforecast and mlforecast",
           lambda d: ["--series", "500"]),
    Script("bench_scale.py", 16, 6, "every nightly stage on tiny..medium + a blinkit slice"),
)


@dataclass
class Outcome:
    script: Script
    status: str                      # PASS-ran | FAILED | TIMEOUT | SKIPPED | MISSING
    seconds: float = 0.0
    code: int | None = None
    log: Path | None = None
    verdicts: list[str] = field(default_factory=list)
    note: str = ""


def _say(msg: str) -> None:
    print(f"[run_all {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _offers(path: Path, option: str) -> bool:
    """Whether ``path --help`` mentions ``option`` (so it is safe to pass)."""
    try:
        res = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in res.stdout


def run_script(script: Script, args: list[str], timeout_s: float, log: Path) -> Outcome:
    """Run one script, echoing its output, stopped after ``timeout_s``."""
    path = BENCH / script.name
    cmd = [sys.executable, str(path), *args]
    _say(f"{script.name}: {' '.join(cmd[1:])} (at most {timeout_s / 60:.0f} min)")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    t0 = time.perf_counter()
    timed_out = False
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)
        deadline = time.monotonic() + timeout_s

        def watchdog() -> None:
            nonlocal timed_out
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    timed_out = True
                    _say(f"{script.name}: over {timeout_s / 60:.0f} min, stopping it")
                    stop_group(proc, grace_s=60)
                    return
                time.sleep(1)

        import threading

        dog = threading.Thread(target=watchdog, daemon=True)
        dog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
        code = proc.wait()
        dog.join()
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    status = "TIMEOUT" if timed_out else ("ran" if code == 0 else "FAILED")
    return Outcome(script, status, seconds, code, log, verdict_lines(text))


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The options of a run (also those of ``replenish bench``, which adds this as a parent)."""
    p = argparse.ArgumentParser(prog="bench/run_all.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                add_help=add_help)
    p.add_argument("--quick", action="store_true",
                   help="pass --quick to every script (a few minutes each)")
    p.add_argument("--only", default="",
                   help="comma-separated scripts to run (e.g. bench_peers,bench_scale)")
    p.add_argument("--skip", default="", help="comma-separated scripts to leave out")
    p.add_argument("--budget", type=float, default=None,
                   help="minutes for the whole run (default 58, --quick 25)")
    p.add_argument("--logs", type=Path, default=None,
                   help="folder for the scripts' logs (default: a temporary folder)")
    p.add_argument("--out", default=str(RESULTS),
                   help="RESULTS.md to update ('-' to only print); passed to every script")
    p.add_argument("--workdir", type=Path, default=None,
                   help="folder for the worlds the scripts share in a full run (the 730-day "
                   "medium world, ~2 GB: generated by bench_generate, featurised by "
                   "bench_features, scored by bench_models); default: a temporary folder, "
                   "deleted at the end unless --keep (a folder given here is kept)")
    p.add_argument("--keep", action="store_true", help="keep the shared worlds at the end")
    p.add_argument("--list", action="store_true",
                   help="print the scripts, their caps and what they measure, and exit")
    return p


#: A script uses the shared world only when the script that makes it ran (exit 0) in this run.
_NEEDS = {"bench_features": "bench_generate", "bench_models": "bench_features"}


def _shared_args(script: Script, shared: Path, ran: set[str]) -> list[str]:
    """The script's shared-world arguments, or none when the script that makes its world
    was left out, failed or timed out: then the script makes its own, as when run alone."""
    stem = script.name.removesuffix(".py")
    if stem in _NEEDS and _NEEDS[stem] not in ran:
        return []
    shared.mkdir(parents=True, exist_ok=True)
    return script.shared(shared)


def script_names(text: str) -> set[str]:
    """``a,b.py`` -> {a, b}: the stems of a comma-separated list of scripts."""
    return {n.strip().removesuffix(".py") for n in text.split(",") if n.strip()}


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the scripts as ``args`` (from :func:`build_parser`) say; 1 if one failed or timed
    out."""
    if args.list:
        print("\n".join(md_table(["script", "cap min", "cap min (--quick)", "measures"],
                                 [[s.name, f"{s.cap_min:g}", f"{s.quick_cap_min:g}", s.what]
                                  for s in SCRIPTS], ":---|---:|---:|:---")))
        return 0
    budget_s = 60 * (args.budget if args.budget is not None else 25 if args.quick else 58)
    only, skip = script_names(args.only), script_names(args.skip)
    tmp_root = Path(os.environ.get("TMPDIR", "/tmp"))
    logs = args.logs or tmp_root / f"bench-logs-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    shared = args.workdir or tmp_root / f"bench-shared-{os.getpid()}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load = LoadSampler(every=30).start()
    outcomes: list[Outcome] = []
    ran: set[str] = set()
    try:
        for script in SCRIPTS:
            stem = script.name.removesuffix(".py")
            if (only and stem not in only) or stem in skip:
                continue
            path = BENCH / script.name
            if not path.exists():
                _say(f"{script.name}: not in bench/ yet, skipped")
                outcomes.append(Outcome(script, "MISSING", note="script not in bench/ yet"))
                continue
            left = budget_s - (time.monotonic() - started)
            if left < 60:
                _say(f"{script.name}: skipped, the {budget_s / 60:.0f}-minute budget is spent")
                outcomes.append(Outcome(script, "SKIPPED", note="time budget spent"))
                continue
            extra: list[str] = []
            if args.quick:
                if _offers(path, "--quick"):
                    extra.append("--quick")
                else:
                    _say(f"{script.name}: has no --quick; running it as it is")
            if _offers(path, "--out"):
                extra += ["--out", args.out]
            if not args.quick:
                extra += _shared_args(script, shared, ran)
            cap = 60 * (script.quick_cap_min if args.quick else script.cap_min)
            outcomes.append(run_script(script, extra, min(cap, left),
                                       logs / f"{script.name}.log"))
            if outcomes[-1].status == "ran":
                ran.add(stem)
    finally:
        load.stop()
        if args.workdir is None and not args.keep and shared.exists():
            shutil.rmtree(shared, ignore_errors=True)
    total = time.monotonic() - started
    info = machine()
    text = summary(outcomes, info, load, total, args.quick, logs)
    print("\n" + text)
    if args.out != "-":
        update_results(Path(args.out), text)
    bad = [o for o in outcomes if o.status in ("FAILED", "TIMEOUT")]
    return 1 if bad else 0


def summary(outcomes: list[Outcome], info: dict[str, str], load: LoadSampler, total: float,
            quick: bool, logs: Path) -> str:
    lines = [SECTION, "", f"Command: `{command()}` (from the repository root; `make bench"
             f"{' QUICK=1' if quick else ''}` runs it)", "", machine_line(info), "",
             f"Total wall time {total / 60:.1f} min; {load.describe(info['nproc'])}", ""]
    rows = []
    for o in outcomes:
        status = {"ran": "ran (exit 0)", "FAILED": f"FAILED (exit {o.code})"}.get(
            o.status, o.status)
        n_pass = sum(1 for v in o.verdicts if "PASS" in v and "MISS" not in v)
        n_miss = sum(1 for v in o.verdicts if "MISS" in v)
        rows.append([f"`{o.script.name}`", o.script.what, status,
                     f"{o.seconds / 60:,.1f}" if o.seconds else "-", f"{n_pass}", f"{n_miss}",
                     o.note or "-"])
    lines += md_table(["script", "measures", "status", "min", "PASS", "MISS", "note"], rows,
                      ":---|:---|:---|---:|---:|---:|:---") + [""]
    lines += ["PASS/MISS lines, as each script printed them:", ""]
    for o in outcomes:
        if o.verdicts:
            lines += [f"- `{o.script.name}`:"] + [f"  - {v}" for v in o.verdicts]
    if not any(o.verdicts for o in outcomes):
        lines.append("- (none)")
    lines += ["", f"Logs of this run: `{logs}` (not kept in the repository).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
