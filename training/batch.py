"""Batch scoring: every customer of a customers-shaped file through the service's decision code.

Streams the input in chunks and appends each chunk's decisions to the output, so memory stays
flat in the number of customers; the output file appears only when the whole run succeeded.
Chunks are decided by a pool of forked workers (one per core by default), in file order.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import ContractError
from features.io import ParquetChunkWriter
from features.schema import kind_of
from service.decide import DecisionContext, StockLookup
from training.package import Policy, decision_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote."""

    customers: int
    rows: int
    seconds: float


def check_customers_file(path: Path, policy: Policy) -> pq.ParquetFile:
    """Validate the schema up front (before any output is written); returns the open file."""
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise ContractError(str(path), "file not found") from None
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise ContractError(path.name, f"not a readable parquet file ({exc})") from None
    schema = parquet.schema_arrow
    if "customer_id" not in schema.names:
        raise ContractError(path.name, "missing required column", "customer_id")
    if kind_of(schema.field("customer_id").type) != "categorical":
        raise ContractError(path.name, f"expected string, got {schema.field('customer_id').type}",
                            "customer_id")
    policy.spec.check_schema(schema, path.name)
    return parquet


def batch_score(policy: Policy, customers: Path, out: Path, context: DecisionContext,
                stock: StockLookup | None = None, chunk_size: int = 50_000,
                progress: Callable[[int, int, float], None] | None = None,
                workers: int = 1) -> BatchResult:
    """Score every customer in `customers` into `out` (parquet), chunk by chunk.

    With `workers` > 1, forked processes (one LightGBM thread each) decide chunks side by side
    while this process reads and writes in file order; at most two chunks per worker are in
    flight, so memory stays flat in the file size.
    """
    parquet = check_customers_file(customers, policy)
    total = parquet.metadata.num_rows
    chunks = _checked_chunks(parquet, customers.name, chunk_size)
    workers = max(1, min(workers, -(-total // chunk_size)))  # no more workers than chunks
    started = time.perf_counter()
    done = rows = 0
    with ParquetChunkWriter(out) as writer, _chunk_decider(policy, context, stock,
                                                           workers) as decide:
        for customers_in_chunk, decided in decide(chunks):
            writer.write(decided)
            done += customers_in_chunk
            rows += len(decided)
            if progress:
                progress(done, total, time.perf_counter() - started)
    return BatchResult(done, rows, time.perf_counter() - started)


ChunkDecider = Callable[[Iterator[pa.RecordBatch]], Iterator[tuple[int, pd.DataFrame]]]


@contextmanager
def _chunk_decider(policy: Policy, context: DecisionContext, stock: StockLookup | None,
                   workers: int) -> Iterator[ChunkDecider]:
    """(customers, decision rows) per chunk, in order: in this process or in a process pool."""
    if workers == 1:
        yield lambda chunks: (_decide_chunk(policy, context, stock, chunk, None)
                              for chunk in chunks)
        return
    # fork: the workers inherit the loaded policy instead of unpickling a copy each
    with mp.get_context("fork").Pool(workers, _start_worker, (policy, context, stock)) as pool:
        yield lambda chunks: _in_order(pool, chunks, window=2 * workers)


def _in_order(pool: Pool, chunks: Iterator[pa.RecordBatch], window: int
              ) -> Iterator[tuple[int, pd.DataFrame]]:
    """Pool results in submission order, never more than `window` chunks in flight
    (Pool.imap would read the whole file ahead into its queue)."""
    pending: deque[AsyncResult] = deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_decide_in_worker, (chunk,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


_WORKER: dict[str, Any] = {}  # a pool worker's policy, context and stock (set once per process)


def _start_worker(policy: Policy, context: DecisionContext, stock: StockLookup | None) -> None:
    _WORKER.update(policy=policy, context=context, stock=stock)


def _decide_in_worker(chunk: pa.RecordBatch) -> tuple[int, pd.DataFrame]:
    # one LightGBM thread per worker: the workers already use every core between them
    return _decide_chunk(_WORKER["policy"], _WORKER["context"], _WORKER["stock"], chunk, 1)


def _decide_chunk(policy: Policy, context: DecisionContext, stock: StockLookup | None,
                  chunk: pa.RecordBatch, num_threads: int | None) -> tuple[int, pd.DataFrame]:
    """One chunk's decision rows: features, scores and the service's rules."""
    table = policy.customers(chunk.to_pandas())
    return chunk.num_rows, decision_rows(policy, table, context, stock, num_threads)


def _checked_chunks(parquet: pq.ParquetFile, name: str, chunk_size: int
                    ) -> Iterator[pa.RecordBatch]:
    for batch in parquet.iter_batches(batch_size=chunk_size):
        if batch.column("customer_id").null_count:
            raise ContractError(name, "null customer_id", "customer_id")
        yield batch


def default_workers() -> int:
    """Batch worker processes by default: one per core this process may use."""
    return len(os.sched_getaffinity(0))
