"""Run every benchmark, each in its own process, and write bench/results/latest.md.

Run from the repo root: `.venv/bin/python bench/run_all.py` (what `make bench` runs).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from common import RESULTS_DIR

BENCH_DIR = Path(__file__).resolve().parent
#: Script and the markdown file it writes, in report order.
BENCHMARKS = (("bench_decide.py", "decide.md"), ("bench_train.py", "train.md"))


def header(seconds: float, load: float) -> str:
    """Date, machine and versions, so figures from different runs can be compared."""
    return "\n".join([
        "# Benchmarks",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- nproc: {len(os.sched_getaffinity(0))}; load average at start: {load:.2f}",
        f"- python {platform.python_version()}, lightgbm {metadata.version('lightgbm')}, "
        f"mlflow {metadata.version('mlflow')}",
        f"- whole run: {seconds:.0f} s",
        "",
    ])


def main() -> None:
    """Run each script (its table goes to its own file), then print and write the report."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for script, _ in BENCHMARKS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(BENCH_DIR / script)], check=True,
                       stdout=subprocess.DEVNULL)
    sections = [(RESULTS_DIR / name).read_text() for _, name in BENCHMARKS]
    report = "\n".join([header(time.perf_counter() - started, load), *sections])
    (RESULTS_DIR / "latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
