"""Training benchmark: demo data generation, then `train()` timed as a whole and step by step.

Run from the repo root: `.venv/bin/python bench/bench_train.py` (200,000 and 1,000,000
exposures: about 2.5 minutes on 2 cores; `--quick`: 200,000 only, under a minute). Writes
bench/results/train.md. Each size runs in a child process of its own, so each peak RSS is that
size's alone. OMP_NUM_THREADS is left as the
environment sets it; LightGBM uses BoosterParams.n_jobs.

`--workers 1,auto` (the default) trains each size once per cross-fitting path, alternating, in
the same run: 1 is the sequential path (each fit with n_jobs LightGBM threads), auto the
concurrent one (one fit per core, one LightGBM thread each; `TrainSettings.crossfit_workers`);
`--repeats N` alternates them N times and reports each path's median; `--load` keeps one busy
loop running (at this process's niceness) to stand for a shared machine.
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
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import cast

from common import markdown_table, publish, quiet_logging

from nba import demo
from training.crossfit import available_workers
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


def measure(exposures: int, workers: int | None = None) -> dict:
    """Generate, write and train on `exposures` demo exposures in this process, cross-fitting
    `workers` fits at a time (None: one per core); the figures."""
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
                                 artifact_root=root / "mlruns", crossfit_workers=workers)
        rss_before = peak_rss_mb()
        train_s, clock = timed_train(settings)
        rss_train = peak_rss_mb()
    params = settings.params
    return {"exposures": exposures, "customers": customers, "generate_s": generate_s,
            "write_s": write_s, "train_s": train_s, "rss_before": rss_before,
            "rss_train": rss_train, "steps": clock.steps(settings.data_dir),
            "workers": available_workers(workers),
            "params": {"n_estimators": params.n_estimators, "num_leaves": params.num_leaves,
                       "n_jobs": params.n_jobs}}


def measure_in_child(exposures: int, workers: str) -> dict:
    """`measure(exposures)` in a fresh interpreter (its own peak RSS); progress on stderr."""
    print(f"training on {exposures:,} exposures, --workers {workers} ...", file=sys.stderr,
          flush=True)
    out = subprocess.run([sys.executable, __file__, "--one", str(exposures), "--workers", workers],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    result: dict = json.loads(out.strip().splitlines()[-1])
    print(f"  train() {result['train_s']:.1f} s, cross-fitting {crossfit_seconds(result):.1f} s, "
          f"peak RSS {result['rss_train']:.0f} MB", file=sys.stderr, flush=True)
    return result


@contextmanager
def busy_loop(on: bool) -> Iterator[None]:
    """With `on`, one CPU-bound child process (this process's niceness) while the block runs."""
    if not on:
        yield
        return
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        child.kill()
        child.wait()


def crossfit_seconds(result: dict) -> float:
    """Seconds of the two cross-fitting steps (outcome models, learner x capacity pairs)."""
    return sum(seconds for step, seconds in result["steps"] if step.startswith("cross-fitting"))


def median_run(runs: list[dict]) -> dict:
    """The run with the median `train()` time (the lower one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["train_s"])
    return ordered[(len(ordered) - 1) // 2]


def fit_seconds(result: dict) -> float:
    """Seconds of the three `fitting` steps."""
    return sum(seconds for step, seconds in result["steps"] if step.startswith("fitting"))


def main() -> None:
    """Measure each size and path in a child, then publish the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"skip the {LARGE_EXPOSURES:,}-exposure run (about 2 minutes)")
    parser.add_argument("--workers", default="1,auto",
                        help="cross-fitting paths to compare, comma-separated: a number of "
                             "concurrent fits or auto (default %(default)s; the first is the "
                             "peer the others' ratios are to)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate the paths this many times; medians (default 1)")
    parser.add_argument("--load", action="store_true",
                        help="keep one busy loop running meanwhile (a shared machine)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_logging()
    paths = [w.strip() for w in args.workers.split(",") if w.strip()]
    if args.one is not None:  # the child: one size, one JSON line
        print(json.dumps(measure(args.one, None if paths[0] == "auto" else int(paths[0]))))
        return
    sizes = (EXPOSURES, *(() if args.quick else (LARGE_EXPOSURES,)))
    runs: dict[tuple[int, str], list[dict]] = {(n, w): [] for n in sizes for w in paths}
    started = time.perf_counter()
    with busy_loop(args.load):
        for _ in range(max(1, args.repeats)):
            for n in sizes:
                for w in paths:
                    runs[n, w].append(measure_in_child(n, w))
    wall = time.perf_counter() - started
    results = {key: median_run(value) for key, value in runs.items()}
    base = results[EXPOSURES, paths[0]]
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
    compared = []
    for n in sizes:
        peer = results[n, paths[0]]
        for w in paths:
            r = results[n, w]
            compared.append((f"{n:,}", f"{w} ({r['workers']} at a time)",
                             " / ".join(f"{x['train_s']:.1f}" for x in runs[n, w]),
                             f"{r['train_s']:.1f}", f"{r['train_s'] / peer['train_s']:.2f}x",
                             f"{crossfit_seconds(r):.1f}",
                             f"{crossfit_seconds(r) / crossfit_seconds(peer):.2f}x",
                             f"{r['rss_train']:,.0f}"))
    scaling = [(f"{r['exposures']:,}", f"{r['customers']:,}", f"{r['train_s']:.1f}",
                f"{fit_seconds(r):.1f}", f"{r['train_s'] / base['train_s']:.2f}x",
                f"{r['rss_train']:,.0f}", f"{r['rss_train'] / base['rss_train']:.2f}x")
               for r in (results[n, paths[0]] for n in sizes)]
    scaling_md = ([
        f"Scaling (each size in its own process; cross-fitting --workers {paths[0]}):",
        "",
        markdown_table(("exposures", "customers", "`train()` s", "fitting s", "time vs 200k",
                        "peak RSS MB", "memory vs 200k"), scaling),
        "",
    ] if len(sizes) > 1 else [
        f"Scaling to {LARGE_EXPOSURES:,} exposures: skipped (`--quick`).",
        "",
    ])
    load = os.getloadavg()
    markdown = "\n".join([
        "## Training",
        "",
        f"Demo data seed {SEED}; {params['n_estimators']} trees per booster, "
        f"{params['num_leaves']} leaves, n_jobs={params['n_jobs']}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; MLflow on a temporary SQLite store; "
        f"{available_workers()} core(s) available; "
        f"{'one busy loop running (--load)' if args.load else 'no added load'}; "
        f"load average at the end {load[0]:.1f}; {max(1, args.repeats)} repeat(s), "
        f"{wall:.0f} s in all.",
        "",
        f"Cross-fitting paths (`--workers`; ratios to `{paths[0]}` in the same run; medians):",
        "",
        markdown_table(("exposures", "workers", "`train()` s, each run", "`train()` s (median)",
                        "vs peer", "cross-fitting s", "vs peer", "peak RSS MB"), compared),
        "",
        f"Cross-fitting path `{paths[0]}`:",
        "",
        markdown_table(("measure", "value"), rows),
        "",
        f"Where `train()` spends its time on {base['exposures']:,} exposures (its own progress "
        f"steps), per path:",
        "",
        markdown_table(("step", *(f"{w} s" for w in paths)),
                       [(step, *(f"{dict(results[EXPOSURES, w]['steps']).get(step, 0.0):.1f}"
                                 for w in paths))
                        for step, _ in base["steps"]]),
        "",
        *scaling_md,
    ])
    publish("train.md", markdown)

if __name__ == "__main__":
    main()
