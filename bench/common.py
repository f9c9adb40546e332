"""Shared by the benchmark scripts: the machine's description, the exact command, and
replacing one section of bench/RESULTS.md while keeping the others."""
from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["REPO", "RESULTS", "machine", "command", "update_results", "machine_line",
           "LoadSampler", "md_table", "verdict", "verdict_lines", "TreePeak", "stop_group"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
RESULTS_HEADER = ("# Benchmark results\n\n"
                  "Measured results of the scripts in `bench/` (see `bench/README.md`). Each "
                  "section says the command that produced it, the machine and the date; "
                  "re-running a script replaces only its own section.\n")


def machine() -> dict[str, str]:
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        ncpu = os.cpu_count() or 0
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        date = subprocess.run(["date", "-u", "+%F"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        date = dt.datetime.now(dt.UTC).date().isoformat()
    return {"nproc": str(ncpu), "memory": mem, "cpu": cpu,
            "python": platform.python_version(), "arch": platform.machine(), "date": date}



def command() -> str:
    def rel(p: str) -> str:
        try:
            return str(Path(p).absolute().relative_to(REPO))
        except ValueError:
            return p
    return shlex.join([rel(sys.executable), rel(sys.argv[0])] + sys.argv[1:])



def update_results(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else RESULTS_HEADER
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == section.splitlines()[0].strip())
    except StopIteration:
        body = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:]).strip("\n")
        body = (before + "\n\n" if before else "") + section.rstrip("\n") + "\n"
        if after:
            body += "\n" + after + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)




def machine_line(info: dict[str, str]) -> str:
    return (f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
            f"Python {info['python']}, {info['arch']}. Date: {info['date']} (UTC).")


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while a benchmark runs:
    how busy the (shared) machine was meanwhile."""

    def __init__(self, every: float = 15.0) -> None:
        self.samples: list[float] = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def start(self) -> LoadSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def text(self) -> str:
        """``mean M, max X`` of the samples (the current load when none was taken yet)."""
        s = self.samples or [os.getloadavg()[0]]
        return f"mean {sum(s) / len(s):.1f}, max {max(s):.1f}"

    def describe(self, nproc: str | int) -> str:
        if not self.samples:
            return "load average not sampled."
        return (f"the machine's 1-minute load average during the run: {self.text()} on "
                f"{nproc} CPUs (above {nproc}: other work competed for the CPUs, so wall "
                "times are pessimistic).")


class TreePeak:
    """Peak RSS (MB) of a process and all its descendants (a CLI and its Spark JVM), summed,
    sampled every ``every`` seconds until ``stop``."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid = pid
        self.peak = 0.0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(self.every)

    def start(self) -> TreePeak:
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table as lines; the first column left-aligned, the others right."""
    align = align or ":---" + "|---:" * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + align + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def verdict(ok: bool, miss: float = float("nan"), word: str = "over") -> str:
    """``PASS``, or ``MISS (+12% over)`` with the relative miss when it is known."""
    if ok:
        return "PASS"
    return f"MISS ({miss:+.0%} {word})" if math.isfinite(miss) else "MISS"


_VERDICT = re.compile(r"\b(PASS|MISS)\b")


def verdict_lines(text: str) -> list[str]:
    """The PASS/MISS lines of a benchmark's output, one per check, for a summary: a table row
    whose cells hold PASS or MISS becomes its non-empty cells joined by ' | ' (a row of more
    than 5 cells: its first cell and its verdict cells, each named by its column); any other
    line holding PASS or MISS is kept as it is. Duplicates (a table printed twice) go."""
    seen: dict[str, None] = {}
    lines = [raw.strip() for raw in text.splitlines()]
    header: list[str] = []

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|") \
                and set(lines[i + 1]) <= set("|-: "):
            header = cells(line)
            continue
        if not _VERDICT.search(line) or set(line) <= set("|-: "):
            continue
        if line.startswith("|"):
            row = cells(line)
            if len(row) > 5 and len(header) == len(row):
                line = f"{row[0]}: " + "; ".join(f"{h} {c}" for h, c in zip(header, row,
                                                                              strict=True)
                                                 if _VERDICT.search(c))
            else:
                line = " | ".join(c for c in row if c and c != "-")
        seen.setdefault(line, None)
    return list(seen)


def clean_from_raw(cfg, dates: list[dt.date]) -> None:
    """Copy raw partitions to clean, cast to the schema (the backfill's stand-in for
    validate_raw, which is timed separately on one night), with the promotions ingest
    brought in ahead of the last date."""
    from jobs.ingest import DAILY_TABLES, DIMENSIONS, raw_root
    from jobs.lake import list_dates, read_partition, write_partition
    from jobs.schema import promotions_ahead

    raw = raw_root(cfg)
    clean = cfg.lake / "clean"
    for table in DIMENSIONS:
        for day in list_dates(raw, table):
            write_partition(clean, table, day, read_partition(raw, table, day))
    for table in DAILY_TABLES:
        have = set(list_dates(raw, table))
        days = dates + (promotions_ahead(dates[-1]) if table == "promotions" and dates else [])
        for day in days:
            if day in have:
                write_partition(clean, table, day, read_partition(raw, table, day))


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to ``proc``'s process group (it was started with ``start_new_session``), then
    SIGKILL if it has not ended within ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
