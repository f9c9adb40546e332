"""Shared by the benchmark scripts: the machine's description, the exact command, and
replacing one section of bench/RESULTS.md while keeping the others."""
from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO", "RESULTS", "machine", "command", "update_results", "machine_line"]

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
