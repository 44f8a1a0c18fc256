"""Batch scoring: every customer of a customers-shaped file through the service's decision code.

Streams the input in chunks and appends each chunk's decisions to the output, so memory stays
flat in the number of customers; the output file appears only when the whole run succeeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
                progress: Callable[[int, int, float], None] | None = None) -> BatchResult:
    """Score every customer in `customers` into `out` (parquet), chunk by chunk."""
    parquet = check_customers_file(customers, policy)
    total = parquet.metadata.num_rows
    started = time.perf_counter()
    done = rows = 0
    with ParquetChunkWriter(out) as writer:
        for batch in parquet.iter_batches(batch_size=chunk_size):
            if batch.column("customer_id").null_count:
                raise ContractError(customers.name, "null customer_id", "customer_id")
            frame = batch.to_pandas()
            table = policy.customers(frame)
            decided = decision_rows(policy, table, context, stock)
            writer.write(decided)
            done += len(frame)
            rows += len(decided)
            if progress:
                progress(done, total, time.perf_counter() - started)
    return BatchResult(done, rows, time.perf_counter() - started)
