"""Training benchmark: demo data generation, then `train()` timed as a whole and step by step.

Run from the repo root: `.venv/bin/python bench/bench_train.py`. Writes bench/results/train.md.
OMP_NUM_THREADS is left as the environment sets it; LightGBM uses BoosterParams.n_jobs.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import logging
import resource
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from common import markdown_table, publish, quiet_logging

from nba import demo
from training.pipeline import train
from training.settings import TrainSettings

CUSTOMERS = 50_000
EXPOSURES = 200_000
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
        if str(record.msg).startswith("[%d/%d]"):  # training.pipeline.Progress
            _, _, message, elapsed = record.args
            self.marks.append((message, elapsed))

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


def main() -> None:
    """Generate and write the demo data, train on it, and publish the tables."""
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="nba-bench-train-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        data = demo.generate(CUSTOMERS, EXPOSURES, SEED)
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

    steps = clock.steps(settings.data_dir)
    fit_s = sum(seconds for step, seconds in steps if step.startswith("fitting"))

    params = settings.params
    rows = [
        ("exposures (customers)", f"{EXPOSURES:,} ({CUSTOMERS:,})"),
        ("demo data generation", f"{generate_s:.2f} s"),
        ("demo data write (parquet)", f"{write_s:.2f} s"),
        ("`train()` wall time", f"{train_s:.1f} s"),
        ("of which fitting (the three `fitting` steps)", f"{fit_s:.1f} s"),
        ("peak RSS after `train()`", f"{rss_train:.0f} MB"),
        ("peak RSS before `train()` (data generation)", f"{rss_before:.0f} MB"),
    ]
    markdown = "\n".join([
        "## Training",
        "",
        f"Demo data seed {SEED}; {params.n_estimators} trees per booster, {params.num_leaves} "
        f"leaves, n_jobs={params.n_jobs}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; MLflow on a temporary SQLite store.",
        "",
        markdown_table(("measure", "value"), rows),
        "",
        "Where `train()` spends its time (its own progress steps):",
        "",
        markdown_table(("step", "seconds"), [(step, f"{seconds:.1f}") for step, seconds in steps]),
        "",
    ])
    publish("train.md", markdown)


if __name__ == "__main__":
    main()
