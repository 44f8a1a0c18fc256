"""Training benchmark: demo data generation, the whole `train()`, and the fitting alone.

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

import pyarrow.parquet as pq
from common import markdown_table, publish, quiet_logging

from features import io
from features.build import infer_spec
from features.schema import feature_columns
from nba import demo
from training.pipeline import STEPS, Progress, fit_policy, train
from training.settings import TrainSettings
from training.split import holdout_mask

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


def time_fit(settings: TrainSettings) -> tuple[float, int]:
    """Seconds `fit_policy` takes on the same training split `train()` uses, and its rows."""
    data = settings.data_dir
    catalog = io.read_catalog(data / io.OFFERS)
    exposures = io.read_exposures(data / io.EXPOSURES, catalog)
    kinds = feature_columns(pq.read_schema(data / io.EXPOSURES), io.EXPOSURES)
    is_test = holdout_mask(exposures["customer_id"], settings.test_size, settings.seed)
    frame = exposures[~is_test]
    spec = infer_spec(frame, kinds)
    started = time.perf_counter()
    fit_policy(frame, spec, catalog, settings, Progress(STEPS))
    return time.perf_counter() - started, len(frame)


def main() -> None:
    """Generate, train, time the fit alone, and publish the tables."""
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
        fit_s, train_rows = time_fit(settings)

    params = settings.params
    rows = [
        ("exposures (customers)", f"{EXPOSURES:,} ({CUSTOMERS:,})"),
        ("training-split rows", f"{train_rows:,}"),
        ("demo data generation", f"{generate_s:.2f} s"),
        ("demo data write (parquet)", f"{write_s:.2f} s"),
        ("`train()` wall time", f"{train_s:.1f} s"),
        ("`fit_policy()` alone (same split)", f"{fit_s:.1f} s"),
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
        markdown_table(("step", "seconds"), [(step, f"{seconds:.1f}")
                                             for step, seconds in clock.steps(settings.data_dir)]),
        "",
    ])
    publish("train.md", markdown)


if __name__ == "__main__":
    main()
