"""Batch scoring: every customer of a customers-shaped file through the one decision core.

Streams the input in chunks and appends each chunk's decisions to the output, so memory stays
flat in the number of customers; the output file appears only when the whole run succeeded.
Chunks are decided by a pool of forked workers (one per core by default), in file order.
A campaign (`Campaign`) also hands each chunk's decision-log records to `log`, in file order.
A budget (`decisioning.budget.Budget`) takes two passes: the first decides every customer and
keeps only their candidate sends (value, spend), the allocation picks the sends, and the second
decides again and sends only those.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from decisioning.budget import Budget, allocate, send_spend, within_budget
from decisioning.core import NO_SETTINGS
from decisioning.decision import Decision, DecisionContext, DecisionSettings
from decisioning.snapshot import EMPTY, ContactHistory, StateSnapshot
from features.errors import ContractError
from features.io import ParquetChunkWriter
from features.schema import kind_of
from state.log import DecisionRecord
from training.decision_log import decision_record
from training.package import DECISION_COLUMNS, Policy, decide_table, rows_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Campaign:
    """A batch run whose decisions are logged: its id, the model version, every customer's
    contact history (missing: none), and where the log records go (chunk by chunk)."""

    campaign_id: str
    model_version: str
    contacts: dict[str, ContactHistory]
    log: Callable[[list[DecisionRecord]], None] | None = None


def campaign_decision_id(campaign_id: str, customer_id: str) -> str:
    """The decision id of a customer in a campaign: the same on every re-run (idempotence)."""
    return f"campaign:{campaign_id}:{customer_id}"


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
                snapshot: StateSnapshot = EMPTY, chunk_size: int = 50_000,
                progress: Callable[[int, int, float], None] | None = None,
                workers: int = 1, settings: DecisionSettings = NO_SETTINGS,
                campaign: Campaign | None = None, budget: Budget | None = None
                ) -> BatchResult:
    """Score every customer in `customers` into `out` (parquet), chunk by chunk.

    `snapshot` is the stock and launch state every customer is decided against; `settings`
    the holdout (the service's by default: holdout customers get a row with no offer). With
    `workers` > 1, forked processes (one LightGBM thread each) decide chunks side by side
    while this process reads and writes in file order; at most two chunks per worker are in
    flight, so memory stays flat in the file size. With a `budget`, only the sends the
    allocation picks are made (the others: reason `budget`); memory then also holds one small
    row per candidate send.
    """
    parquet = check_customers_file(customers, policy)
    total = parquet.metadata.num_rows
    chunks = _checked_chunks(parquet, customers.name, chunk_size)
    workers = max(1, min(workers, -(-total // chunk_size)))  # no more workers than chunks
    started = time.perf_counter()
    done = rows = 0
    job = Job(policy, context, snapshot, settings, campaign)
    if budget is not None:
        job = replace(job, budget=budget)
        job = replace(job, keep=_allocate(job, parquet, customers.name, chunk_size, workers))
    # one row per customer: readable by its writer alone, whatever the umask
    with ParquetChunkWriter(out, private=True) as writer, \
            _chunk_decider(job, workers) as decide:
        for customers_in_chunk, decided, records in decide(chunks):
            writer.write(decided)
            if campaign is not None and campaign.log is not None:
                campaign.log(records)
            done += customers_in_chunk
            rows += len(decided)
            if progress:
                progress(done, total, time.perf_counter() - started)
    return BatchResult(done, rows, time.perf_counter() - started)


@dataclass(frozen=True)
class Job:
    """What every chunk is decided with (inherited by forked workers, never pickled; Spark's
    executors build their own from the broadcast policy: training.spark_score)."""

    policy: Policy
    context: DecisionContext
    snapshot: StateSnapshot
    settings: DecisionSettings
    campaign: Campaign | None
    budget: Budget | None = None
    #: with a budget: the sends to make, customer -> offers (None: the allocation pass)
    keep: dict[str, set[str]] | None = None


Decided = tuple[int, pd.DataFrame, list[DecisionRecord]]
ChunkDecider = Callable[[Iterator[pa.RecordBatch]], Iterator[Decided]]


@contextmanager
def _chunk_decider(job: Job, workers: int) -> Iterator[ChunkDecider]:
    """(customers, decision rows, log records) per chunk, in order: here or in a pool."""
    if workers == 1:
        yield lambda chunks: (decide_chunk(job, chunk, None) for chunk in chunks)
        return
    # fork: the workers inherit the loaded policy instead of unpickling a copy each
    with mp.get_context("fork").Pool(workers, _start_worker, (job,)) as pool:
        yield lambda chunks: _in_order(pool, chunks, window=2 * workers)


def _in_order(pool: Pool, chunks: Iterator[pa.RecordBatch], window: int) -> Iterator[Decided]:
    """Pool results in submission order, never more than `window` chunks in flight
    (Pool.imap would read the whole file ahead into its queue)."""
    pending: deque[AsyncResult] = deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_decide_in_worker, (chunk,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


_WORKER: dict[str, Any] = {}  # a pool worker's job (set once per process)


def _start_worker(job: Job) -> None:
    _WORKER["job"] = job


def _decide_in_worker(chunk: pa.RecordBatch) -> Decided:
    # one LightGBM thread per worker: the workers already use every core between them
    return decide_chunk(_WORKER["job"], chunk, 1)


def decide_chunk(job: Job, chunk: pa.RecordBatch, num_threads: int | None) -> Decided:
    """One chunk's decision rows (and a campaign's log records): the decision core's.

    The one chunk function of every engine (this module's worker processes, Spark's
    mapInArrow): (customers in the chunk, decision rows, log records).
    """
    policy, campaign = job.policy, job.campaign
    table = policy.situate_all(policy.customers(chunk.to_pandas()), job.context)
    contacts = None
    if campaign is not None and policy.catalog.contact_policy is not None:
        known, nobody = campaign.contacts, ContactHistory()
        contacts = lambda customer_id: known.get(customer_id, nobody)  # noqa: E731
    scored = policy.score(table.matrix, num_threads)
    decisions = decide_table(policy, table, job.context, job.snapshot, job.settings, contacts,
                             scored=scored)
    if job.budget is not None and job.keep is None:  # the allocation pass: candidates only
        return chunk.num_rows, _candidates(policy, table.ids, decisions, job.budget), []
    if job.budget is not None and job.keep is not None:
        nothing: set[str] = set()
        decisions = [within_budget(d, job.keep.get(cid, nothing), job.budget)
                     for cid, d in zip(table.ids, decisions, strict=True)]
    records: list[dict] = []
    for customer_id, decision in zip(table.ids, decisions, strict=True):
        records.extend(rows_of(customer_id, decision))
    logged: list[DecisionRecord] = []
    if campaign is not None:
        logged = [decision_record(decision, scored[0][row].tolist(), policy.catalog, table, row,
                                  job.context,
                                  campaign_decision_id(campaign.campaign_id, table.ids[row]),
                                  campaign.model_version)
                  for row, decision in enumerate(decisions)]
    return chunk.num_rows, pd.DataFrame.from_records(records, columns=DECISION_COLUMNS), logged


def _candidates(policy: Policy, ids: list[str], decisions: list[Decision], budget: Budget
                ) -> pd.DataFrame:
    """Every send the decisions would make: customer, offer, value and spend."""
    index = {offer_id: k for k, offer_id in enumerate(policy.catalog.offer_ids)}
    costs = [o.cost for o in policy.catalog.offers]
    rows = [(cid, o.offer_id, index[o.offer_id], o.expected_incremental_value,
             costs[index[o.offer_id]]) for cid, d in zip(ids, decisions, strict=True)
            for o in d.offers]
    frame = pd.DataFrame(rows, columns=["customer_id", "offer_id", "offer", "value", "cost"])
    frame["spend"] = send_spend(frame["cost"].to_numpy(), budget)
    return frame


def _allocate(job: Job, parquet: pq.ParquetFile, name: str, chunk_size: int, workers: int
              ) -> dict[str, set[str]]:
    """The allocation pass: decide everyone, then pick the sends the budget allows."""
    assert job.budget is not None
    with _chunk_decider(job, workers) as decide:
        frames = [frame for _, frame, _ in decide(_checked_chunks(parquet, name, chunk_size))]
    candidates = pd.concat(frames, ignore_index=True)
    quotas = {k: o.quota for k, o in enumerate(job.policy.catalog.offers) if o.quota is not None}
    chosen = allocate(candidates["value"].to_numpy(), candidates["spend"].to_numpy(),
                      candidates["offer"].to_numpy(), job.budget, quotas)
    keep: dict[str, set[str]] = {}
    for cid, offer_id in zip(candidates["customer_id"][chosen],
                             candidates["offer_id"][chosen], strict=True):
        keep.setdefault(cid, set()).add(offer_id)
    log.info("budget: %d of %d candidate sends chosen", int(chosen.sum()), len(candidates))
    return keep


def _checked_chunks(parquet: pq.ParquetFile, name: str, chunk_size: int
                    ) -> Iterator[pa.RecordBatch]:
    """The file's chunks; a ContractError for a null or repeated customer_id.

    A customer twice in a chunk was a traceback (the chunk's table keeps one row per id); twice
    in two chunks, decided twice, so the outcome hung on the chunk size. The ids seen so far are
    kept (ids only, not rows): a repeat is refused when its chunk is reached.
    """
    seen: set[object] = set()
    for batch in parquet.iter_batches(batch_size=chunk_size):
        ids = batch.column("customer_id")
        if ids.null_count:
            raise ContractError(name, "null customer_id", "customer_id")
        if pc.count_distinct(ids).as_py() < len(ids):
            counts = pc.value_counts(ids)
            repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
            _refuse_repeats(name, repeated.to_pylist())
        chunk = ids.to_pylist()
        _refuse_repeats(name, [i for i in chunk if i in seen])
        seen.update(chunk)
        yield batch


def _refuse_repeats(name: str, repeated: list) -> None:
    """A ContractError naming the customer ids in `repeated` (in file order), if any."""
    if repeated:
        raise ContractError(
            name, f"{len(repeated)} customer_id(s) appear more than once, e.g. "
            f"{repeated[0]!r}; one row per customer", "customer_id")


def default_workers() -> int:
    """Batch worker processes by default: one per core this process may use."""
    return len(os.sched_getaffinity(0))
