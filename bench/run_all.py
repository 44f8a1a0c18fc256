"""Run every benchmark, each in its own process, and write bench/results/latest.md.

Run from the repo root: `.venv/bin/python bench/run_all.py` (what `make bench` runs).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from common import RESULTS_DIR

BENCH_DIR = Path(__file__).resolve().parent
#: Script and the markdown file it writes, in report order.
BENCHMARKS = (("bench_decide.py", "decide.md"), ("bench_train.py", "train.md"),
              ("bench_allocation.py", "allocation.md"), ("bench_online.py", "online.md"),
              ("bench_batch.py", "batch.md"), ("bench_coldstart.py", "coldstart.md"),
              ("bench_profiles.py", "profiles.md"), ("bench_scale.py", "scale.md"),
              ("bench_decision_log.py", "decision_log.md"))


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (first line of /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def header(seconds: float, load: float, others: float) -> str:
    """Date, machine, contention and versions, so figures from different runs can be compared.

    LightGBM training with n_jobs=2 slows down many times over when anything else uses a core,
    so the CPU other processes used during the run is part of the result.
    """
    return "\n".join([
        "# Benchmarks",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- nproc: {len(os.sched_getaffinity(0))}; load average before: {load:.2f}; "
        f"CPU used by other processes during the run: {others:.0f} s "
        f"({others / seconds:.0%} of one core; near 0% for uncontended figures)",
        f"- python {platform.python_version()}, lightgbm {metadata.version('lightgbm')}, "
        f"mlflow {metadata.version('mlflow')}",
        f"- whole run: {seconds:.0f} s",
        "",
    ])


def main() -> None:
    """Run each script (its table goes to its own file), then print and write the report."""
    load = os.getloadavg()[0]
    busy, started = busy_cpu_seconds(), time.perf_counter()
    for script, _ in BENCHMARKS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(BENCH_DIR / script)], check=True,
                       stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    others = max(0.0, busy_cpu_seconds() - busy - children_cpu_seconds())
    sections = [(RESULTS_DIR / name).read_text() for _, name in BENCHMARKS]
    report = "\n".join([header(seconds, load, others), *sections])
    (RESULTS_DIR / "latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
