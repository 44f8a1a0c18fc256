"""Training benchmark: demo data generation, then `train()` timed as a whole and step by step.

Run from the repo root: `.venv/bin/python bench/bench_train.py` (200,000 and 1,000,000
exposures: about 2.5 minutes on 2 cores; `--quick`: 200,000 only, under a minute). Writes
bench/results/train.md. Each size runs in a child process of its own, so each peak RSS is that
size's alone. OMP_NUM_THREADS is left as the
environment sets it; LightGBM uses BoosterParams.n_jobs.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import cast

from common import markdown_table, publish, quiet_logging

from nba import demo
from training.pipeline import train
from training.settings import TrainSettings

CUSTOMERS = 50_000
EXPOSURES = 200_000
#: the scaling run (skipped with --quick); customers grow with it (4 exposures per customer)
LARGE_EXPOSURES = 1_000_000
SEED = 7


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (ru_maxrss is KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepClock(logging.Handler):
    """Collects the pipeline's numbered progress messages: (message, seconds since start)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.marks: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("[%d/%d]") and isinstance(record.args, tuple):
            _, _, message, elapsed = record.args  # training.pipeline.Progress
            self.marks.append((str(message), float(cast(float, elapsed))))

    def steps(self, data_dir: Path) -> list[tuple[str, float]]:
        """(step, seconds) per step: each message opens a step, the last one closes them."""
        return [(message.replace(str(data_dir), "<data>"), end - start)
                for (message, start), (_, end) in pairwise(self.marks)]


def timed_train(settings: TrainSettings) -> tuple[float, StepClock]:
    """Wall seconds of `train(settings)` and its step timings."""
    clock = StepClock()
    pipeline_log = logging.getLogger("training.pipeline")
    pipeline_log.addHandler(clock)
    pipeline_log.setLevel(logging.INFO)
    pipeline_log.propagate = False  # captured, not printed
    started = time.perf_counter()
    try:
        train(settings)
    finally:
        pipeline_log.removeHandler(clock)
        pipeline_log.setLevel(logging.NOTSET)
        pipeline_log.propagate = True
    return time.perf_counter() - started, clock


def measure(exposures: int) -> dict:
    """Generate, write and train on `exposures` demo exposures in this process; the figures."""
    customers = exposures * CUSTOMERS // EXPOSURES
    with tempfile.TemporaryDirectory(prefix="nba-bench-train-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        data = demo.generate(customers, exposures, SEED)
        generate_s = time.perf_counter() - started
        started = time.perf_counter()
        demo.write(data, root / "data")
        write_s = time.perf_counter() - started
        del data

        settings = TrainSettings(data_dir=root / "data", tracking_uri=f"sqlite:///{root}/mlflow.db",
                                 artifact_root=root / "mlruns")
        rss_before = peak_rss_mb()
        train_s, clock = timed_train(settings)
        rss_train = peak_rss_mb()
    params = settings.params
    return {"exposures": exposures, "customers": customers, "generate_s": generate_s,
            "write_s": write_s, "train_s": train_s, "rss_before": rss_before,
            "rss_train": rss_train, "steps": clock.steps(settings.data_dir),
            "params": {"n_estimators": params.n_estimators, "num_leaves": params.num_leaves,
                       "n_jobs": params.n_jobs}}


def measure_in_child(exposures: int) -> dict:
    """`measure(exposures)` in a fresh interpreter (its own peak RSS); progress on stderr."""
    print(f"training on {exposures:,} exposures ...", file=sys.stderr, flush=True)
    out = subprocess.run([sys.executable, __file__, "--one", str(exposures)], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fit_seconds(result: dict) -> float:
    """Seconds of the three `fitting` steps."""
    return sum(seconds for step, seconds in result["steps"] if step.startswith("fitting"))


def main() -> None:
    """Measure each size in a child, then publish the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"skip the {LARGE_EXPOSURES:,}-exposure run (about 2 minutes)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_logging()
    if args.one is not None:  # the child: one size, one JSON line
        print(json.dumps(measure(args.one)))
        return
    results = [measure_in_child(n) for n in (EXPOSURES, *(() if args.quick
                                                          else (LARGE_EXPOSURES,)))]
    base = results[0]
    params = base["params"]
    rows = [
        ("exposures (customers)", f"{base['exposures']:,} ({base['customers']:,})"),
        ("demo data generation", f"{base['generate_s']:.2f} s"),
        ("demo data write (parquet)", f"{base['write_s']:.2f} s"),
        ("`train()` wall time", f"{base['train_s']:.1f} s"),
        ("of which fitting (the three `fitting` steps)", f"{fit_seconds(base):.1f} s"),
        ("peak RSS after `train()`", f"{base['rss_train']:.0f} MB"),
        ("peak RSS before `train()` (data generation)", f"{base['rss_before']:.0f} MB"),
    ]
    scaling = [(f"{r['exposures']:,}", f"{r['customers']:,}", f"{r['train_s']:.1f}",
                f"{fit_seconds(r):.1f}", f"{r['train_s'] / base['train_s']:.2f}x",
                f"{r['rss_train']:,.0f}", f"{r['rss_train'] / base['rss_train']:.2f}x")
               for r in results]
    scaling_md = ([
        "Scaling (each size in its own process):",
        "",
        markdown_table(("exposures", "customers", "`train()` s", "fitting s", "time vs 200k",
                        "peak RSS MB", "memory vs 200k"), scaling),
        "",
    ] if len(results) > 1 else [
        f"Scaling to {LARGE_EXPOSURES:,} exposures: skipped (`--quick`).",
        "",
    ])
    markdown = "\n".join([
        "## Training",
        "",
        f"Demo data seed {SEED}; {params['n_estimators']} trees per booster, "
        f"{params['num_leaves']} leaves, n_jobs={params['n_jobs']}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; MLflow on a temporary SQLite store.",
        "",
        markdown_table(("measure", "value"), rows),
        "",
        f"Where `train()` spends its time on {base['exposures']:,} exposures (its own progress "
        "steps):",
        "",
        markdown_table(("step", "seconds"),
                       [(step, f"{seconds:.1f}") for step, seconds in base["steps"]]),
        "",
        *scaling_md,
    ])
    publish("train.md", markdown)


if __name__ == "__main__":
    main()
