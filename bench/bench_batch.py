"""Batch scoring: `nba batch-score` on 1M demo customers x 12 offers vs raw Booster.predict.

Run from the repo root: `.venv/bin/python bench/bench_batch.py` (about 4.5 minutes on 2 cores;
`--customers 200000` for a quick look). Writes bench/results/batch.md.

The demo champion (as in bench_online) is trained in a temporary MLflow store. Customers are
generated with the demo generator in chunks of 100,000 (new ids per chunk) straight into a
parquet file, so this process never holds the whole population. `nba batch-score` runs as a
child process through the CLI, with the demo stock and its default worker processes (one per
core); its peak memory is the PSS of it and its workers, summed and polled from /proc. A smaller
run on the first 100,000 of the same customers shows whether memory grows with the file. The
raw figure is the bare `Booster.predict` calls of the policy's boosters (all cores; an S-learner's
on both treatment flags) on the feature matrix of the same customers, timed on its first
RAW_ROWS rows, built with the policy's own `CustomerTable`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pyarrow.parquet as pq
from bench_online import NBA, Champion, train_champion
from common import (
    PeakTreeMemory,
    booster_inputs,
    boosters_of,
    markdown_table,
    publish,
    quiet_logging,
)

from features.io import ParquetChunkWriter
from nba import demo
from training import registry
from training.batch import default_workers
from training.package import Policy

LARGE = 1_000_000
#: 1/10 of LARGE: the same per-chunk work 10 times fewer times; peak memory must not move
SMALL = 100_000
GENERATE_CHUNK = 100_000
SEED = 11
RAW_ROWS = 100_000  # the raw rate is flat in the rows; more would only add minutes
BATCH_CHUNK = 50_000  # `nba batch-score`'s default --chunk-size


def write_customers(paths: dict[int, Path], seed: int = SEED) -> float:
    """Demo customers into one parquet file per size (a smaller file is a prefix of a larger).

    Returns the seconds it took. Chunk k's customers get ids C{k * chunk + 1:09d}, ... .
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    largest = max(paths)
    with ExitStack() as stack:
        writers = {n: stack.enter_context(ParquetChunkWriter(path)) for n, path in paths.items()}
        for start in range(0, largest, GENERATE_CHUNK):
            size = min(GENERATE_CHUNK, largest - start)
            chunk = demo._customers(size, rng)  # the generator's customer step alone
            chunk["customer_id"] = [f"C{i:09d}" for i in range(start + 1, start + size + 1)]
            for n, writer in writers.items():
                if start < n:
                    writer.write(chunk.iloc[:n - start])
    return time.perf_counter() - started


@dataclass(frozen=True)
class BatchRun:
    """One `nba batch-score` child: customers, output rows, wall seconds, peak memory (PSS)."""

    customers: int
    rows: int
    seconds: float
    peak_mb: float

    @property
    def rate(self) -> float:
        """Customers scored per second of the child's whole life (start-up included)."""
        return self.customers / self.seconds


def batch_score(champion: Champion, customers: Path, out: Path) -> BatchRun:
    """`nba batch-score` in a child process: its wall time, and its peak memory summed with its
    worker processes' (PSS polled from /proc)."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=champion.tracking_uri)
    argv = [NBA, "batch-score", "--customers", str(customers), "--out", str(out),
            "--data-dir", str(champion.data_dir), "--chunk-size", str(BATCH_CHUNK)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    assert process.stdout is not None
    with PeakTreeMemory(process.pid) as memory:  # the worker processes count too
        output = process.stdout.read()
        _, status, _ = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"nba batch-score failed ({process.returncode}): {output}")
    found = re.search(r"wrote ([\d,]+) rows for ([\d,]+) customers", output)
    if found is None:
        raise RuntimeError(f"unexpected nba batch-score output: {output}")
    rows, scored = (int(g.replace(",", "")) for g in found.groups())
    return BatchRun(scored, rows, seconds, memory.peak_mb)


def raw_rate(policy: Policy, customers: Path, rows: int) -> tuple[float, float]:
    """(customers/s of the bare Booster.predict calls, seconds) on the first `rows` customers."""
    frame = next(pq.ParquetFile(customers).iter_batches(batch_size=rows)).to_pandas()
    matrix = policy.customers(frame).matrix
    n = len(matrix)
    inputs = booster_inputs(policy.uplift, matrix)
    boosters = boosters_of(policy.uplift)
    boosters[0].predict(inputs[:1000])  # warm-up
    started = time.perf_counter()
    for booster in boosters:
        booster.predict(inputs)
    seconds = time.perf_counter() - started
    return n / seconds, seconds


def main() -> None:
    """Train, generate, score both files, time the raw calls and publish the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=LARGE,
                        help="customers in the large run (default %(default)s)")
    args = parser.parse_args()
    large = args.customers
    small = min(SMALL, large // 10)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="nba-bench-batch-") as tmp:
        root = Path(tmp)
        print("training the demo champion ...", file=sys.stderr, flush=True)
        champion = train_champion(root / "champion")
        paths = {large: root / f"customers-{large}.parquet",
                 small: root / f"customers-{small}.parquet"}
        print(f"writing {large:,} customers ...", file=sys.stderr, flush=True)
        generate_s = write_customers(paths)
        registry.configure(champion.tracking_uri)
        policy = mlflow.pyfunc.load_model(champion.uri).unwrap_python_model().policy
        # the raw calls before and after the batch runs, the faster counting: a neighbour's
        # load during one of them cannot flatter the ratio
        raws = [raw_rate(policy, paths[large], min(RAW_ROWS, large))]
        runs = {}
        for n in (small, large):
            print(f"nba batch-score on {n:,} customers ...", file=sys.stderr, flush=True)
            runs[n] = batch_score(champion, paths[n], root / f"decisions-{n}.parquet")
        raws.append(raw_rate(policy, paths[large], min(RAW_ROWS, large)))
        raw, raw_s = max(raws)
        file_mb = paths[large].stat().st_size / 1e6

    big, little = runs[large], runs[small]
    n_boosters = len(boosters_of(policy.uplift))
    learner = policy.uplift.kind.upper()
    flags = " (w=1 and w=0 rows)" if policy.uplift.kind == "s" else ""
    rows = [
        (f"raw: {n_boosters} `Booster.predict` calls on the matrix{flags}, "
         f"first {min(RAW_ROWS, large):,} customers, all cores (faster of a run before and "
         "one after the batch runs)", "", f"{raw:,.0f}", "",
         f"{raw_s:.1f}", "1.00"),
        *((f"`nba batch-score`, {run.customers:,} customers (whole process)",
           f"{run.rows:,}", f"{run.rate:,.0f}", f"{run.rows / run.seconds:,.0f}",
           f"{run.seconds:.1f}", f"{run.rate / raw:.2f}") for run in (little, big)),
    ]
    memory = [(f"{run.customers:,}", f"{run.peak_mb:,.0f}") for run in (little, big)]
    share = big.rate / raw
    growth = big.peak_mb / little.peak_mb
    markdown = "\n".join([
        "## Batch scoring",
        "",
        f"Demo champion ({champion.offers} offers, {learner}-learner as the menu chose it, 150 "
        f"trees per booster); demo "
        f"customers seed {SEED} generated in {generate_s:.0f} s ({file_mb:.0f} MB of parquet); "
        f"`nba batch-score --chunk-size {BATCH_CHUNK:,}` with the demo stock, channel email, "
        f"limit 3 and its default {default_workers()} worker processes (one "
        "LightGBM thread each), in a child process (its wall time includes imports and the "
        "model load).",
        "",
        markdown_table(("path", "output rows", "customers/s", "rows/s", "seconds",
                        "vs raw"), rows),
        "",
        markdown_table(("customers", "peak memory of `nba batch-score` and its workers, MB "
                        "(PSS)"), memory),
        "",
        f"- target >= 50% of the raw throughput: {share:.0%}: "
        f"**{'met' if share >= 0.5 else 'not met'}**",
        f"- target memory flat in the number of customers: {large // small}x the customers, "
        f"{growth:.2f}x the peak memory: **{'met' if growth < 1.25 else 'not met'}**",
        "",
    ])
    publish("batch.md", markdown)


if __name__ == "__main__":
    main()
