"""Campaign scoring on Apache Spark: the local engine's decisions, one Arrow batch at a time.

The driver validates the customers' schema, takes the policy (already loaded from the registry
by the caller, so the champion alias is resolved once), packs its saved files into bytes and
broadcasts them once; each executor's Python worker unpacks them once and decides every Arrow
batch of its partitions with `training.batch`'s own chunk decision code (the one decision
core), against the stock and launch snapshot taken at job start (shipped in the task closure).
So Spark's output is the local engine's: same columns, same rows.

A campaign (`SparkCampaign`) also needs every customer's contact counts: the extract read at
job start (only customers contacted or declining in the cap windows) becomes a DataFrame
JOINED to the customers, so each Arrow batch carries its own customers' counts and nothing
per customer is shipped whole. Its decision-log records come back as a second parquet output
that the driver streams, batch by batch, into the state store's idempotent COPY path.

`mlflow.pyfunc.spark_udf` is not used: it allows one output row per input row, decides without
stock, and turns null offer ids into the string "nan".
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from decisioning.core import NO_SETTINGS
from decisioning.decision import DecisionContext, DecisionSettings
from decisioning.snapshot import EMPTY, ContactHistory, StateSnapshot
from features.errors import ContractError
from features.schema import kind_of
from state.log import DecisionRecord, record_json, record_of_json
from training.batch import BatchResult, Campaign, Job, check_customers_file, decide_chunk
from training.package import Policy

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: the local engine's output columns and types (training.package.rows_of)
OUTPUT_SCHEMA = pa.schema([("customer_id", pa.string()), ("rank", pa.int64()),
                           ("offer_id", pa.string()), ("action", pa.string()),
                           ("expected_incremental_value", pa.float64()),
                           ("uplift", pa.float64()), ("reason", pa.string()),
                           ("message", pa.string()), ("holdout", pa.bool_()),
                           ("stock_checked", pa.bool_()), ("suppressed", pa.string())])
OUTPUT_DDL = (
    "customer_id string, rank bigint, offer_id string, action string, "
    "expected_incremental_value double, uplift double, reason string, message string, "
    "holdout boolean, stock_checked boolean, suppressed string")

#: a campaign's tasks also return each customer's decision-log record (JSON) on its first row
LOG_COLUMN = "__nba_log_record"
CAMPAIGN_SCHEMA = OUTPUT_SCHEMA.append(pa.field(LOG_COLUMN, pa.string()))
CAMPAIGN_DDL = f"{OUTPUT_DDL}, {LOG_COLUMN} string"
#: the contact extract's columns, joined to the customers (names no customers file uses)
CONTACTS_COLUMN, DECLINES_COLUMN = "__nba_contacts", "__nba_declines"
EXTRACT_DDL = f"customer_id string, {CONTACTS_COLUMN} bigint, {DECLINES_COLUMN} string"


@dataclass(frozen=True)
class SparkCampaign:
    """A campaign on Spark: its id, the model version, the contact extract read at job start
    (customer -> history; customers missing from it have none) and where the log records go
    (None: a dry run, nothing logged)."""

    campaign_id: str
    model_version: str
    contacts: dict[str, ContactHistory]
    log: Callable[[list[DecisionRecord]], None] | None = None
    log_batch: int = 10_000


def session(master: str | None = None, app_name: str = "nba-batch-score",
            batch_size: int = 10_000) -> SparkSession:
    """The Spark session to score in: `master` (e.g. local[2]) or whatever spark-submit set.

    Arrow batches of `batch_size` customers reach the decision code (memory per task stays
    flat). A local master runs executors' Python with this interpreter (and so this install).
    """
    from pyspark.sql import SparkSession

    if master is None or master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    spark = (builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    return spark


def policy_archive(policy: Policy) -> bytes:
    """The policy's saved files (JSON and LightGBM text models) as one tar.gz in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        policy.save(tmp)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(tmp, arcname="policy")
    return buffer.getvalue()


def policy_from_archive(archive: bytes) -> Policy:
    """Load a policy packed by `policy_archive`."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        return Policy.load(Path(tmp) / "policy")


@dataclass(frozen=True)
class _Shipped:
    """What every task gets: the broadcast policy bytes (by digest), the decision context and
    settings, and the job-start snapshot of stock and launch status."""

    archive: Any  # pyspark.Broadcast[bytes]
    digest: str
    context: DecisionContext
    snapshot: StateSnapshot
    settings: DecisionSettings
    campaign: tuple[str, str] | None = None  # (campaign id, model version): log records too


_POLICIES: dict[str, Policy] = {}  # per executor Python worker: policies unpacked, by digest


def _policy(shipped: _Shipped) -> Policy:
    policy = _POLICIES.get(shipped.digest)
    if policy is None:  # once per worker process, not per task or batch
        policy = policy_from_archive(shipped.archive.value)
        _POLICIES.clear()
        _POLICIES[shipped.digest] = policy
    return policy


def _decider(shipped: _Shipped) -> Callable[[Iterator[pa.RecordBatch]],
                                           Iterator[pa.RecordBatch]]:
    """The mapInArrow function: each batch through the local engine's chunk decision."""

    def decide(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        job = Job(_policy(shipped), shipped.context, shipped.snapshot, shipped.settings, None)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if shipped.campaign is None:
                # one LightGBM thread: Spark runs one task per core already
                _, frame, _ = decide_chunk(job, batch, 1)
                yield pa.RecordBatch.from_pandas(frame, schema=OUTPUT_SCHEMA,
                                                 preserve_index=False)
                continue
            customers, contacts = _split_contacts(batch)
            campaign = Campaign(*shipped.campaign, contacts)
            _, frame, logged = decide_chunk(replace(job, campaign=campaign), customers, 1)
            # one record per customer, on the customer's first row (rank 1, or 0: no offer)
            first = (frame["rank"] <= 1).to_numpy()
            records: list[str | None] = [None] * len(frame)
            for row, record in zip(first.nonzero()[0], logged, strict=True):
                records[row] = record_json(record)
            frame[LOG_COLUMN] = records
            yield pa.RecordBatch.from_pandas(frame, schema=CAMPAIGN_SCHEMA,
                                             preserve_index=False)

    return decide


def _split_contacts(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, ContactHistory]]:
    """A joined batch's customers (as read) and its contacted customers' histories."""
    ids = batch.column("customer_id").to_pylist()
    counts = batch.column(CONTACTS_COLUMN).to_pylist()
    declined = batch.column(DECLINES_COLUMN).to_pylist()
    contacts = {cid: ContactHistory(n or 0, json.loads(d) if d else {})
                for cid, n, d in zip(ids, counts, declined, strict=True)
                if n is not None or d is not None}
    keep = [k for k, name in enumerate(batch.schema.names)
            if name not in (CONTACTS_COLUMN, DECLINES_COLUMN)]
    return pa.RecordBatch.from_arrays([batch.column(k) for k in keep],
                                      schema=pa.schema([batch.schema.field(k) for k in keep])
                                      ), contacts


def _contacts_extract(spark: SparkSession, contacts: dict[str, ContactHistory]) -> Any:
    """The job-start contact extract as a DataFrame (customer_id, counts, declines JSON)."""
    histories = list(contacts.values())
    table = pa.table({
        "customer_id": pa.array(list(contacts), pa.string()),
        CONTACTS_COLUMN: pa.array([h.offers_in_window for h in histories], pa.int64()),
        DECLINES_COLUMN: pa.array([json.dumps(dict(h.declines)) if h.declines else None
                                   for h in histories], pa.string())})
    return spark.createDataFrame(table, EXTRACT_DDL)  # pyarrow directly (pyspark >= 4.0)


def _check_schema(spark: SparkSession, customers: str, policy: Policy) -> Any:
    """The customers DataFrame, after the local engine's contract checks (file and column)."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    name = Path(customers).name
    if "://" not in customers and Path(customers).is_file():
        check_customers_file(Path(customers), policy)  # same messages as the local engine
    try:
        frame = spark.read.parquet(customers)
    except AnalysisException as exc:
        raise ContractError(name, f"not a readable parquet file or folder "
                                  f"({str(exc).splitlines()[0]})") from None
    schema = to_arrow_schema(frame.schema)
    if "customer_id" not in schema.names:
        raise ContractError(name, "missing required column", "customer_id")
    if kind_of(schema.field("customer_id").type) != "categorical":
        raise ContractError(name, f"expected string, got {schema.field('customer_id').type}",
                            "customer_id")
    policy.spec.check_schema(schema, name)
    if frame.filter(F.col("customer_id").isNull()).limit(1).count():
        raise ContractError(name, "null customer_id", "customer_id")
    return frame


def spark_score(spark: SparkSession, policy: Policy, customers: str, out: str,
                context: DecisionContext, snapshot: StateSnapshot = EMPTY,
                settings: DecisionSettings = NO_SETTINGS,
                progress: Callable[[int, int], None] | None = None,
                progress_seconds: float = 5.0, partitions: int | None = None,
                campaign: SparkCampaign | None = None) -> BatchResult:
    """Score every customer of `customers` (a parquet file or folder) into `out`, on Spark.

    `out` becomes a parquet folder (one part file per task); it appears only when the whole
    job succeeded (written beside it under a temporary name, then renamed). `progress`
    hears (finished tasks, tasks) every `progress_seconds` while the job runs. `partitions`:
    spread the customers over this many tasks (default: Spark's input splits, ~128 MB each).
    With a `campaign`, its contact extract is joined to the customers and, unless a dry run,
    its log records are handed to `campaign.log` before the output is moved into place (a
    failed log write leaves no output; re-running logs only what is missing).
    """
    started = time.perf_counter()
    frame = _check_schema(spark, customers, policy)
    total = frame.count()
    if campaign is not None:
        frame = frame.join(_contacts_extract(spark, campaign.contacts), "customer_id", "left")
    if partitions:
        frame = frame.repartition(partitions)
    archive = policy_archive(policy)
    shipped = _Shipped(spark.sparkContext.broadcast(archive),
                       hashlib.sha256(archive).hexdigest(), context, snapshot, settings,
                       None if campaign is None else (campaign.campaign_id,
                                                      campaign.model_version))
    log.info("scoring %s customers from %s on %s in %d partitions (policy %d KB, broadcast "
             "once)", f"{total:,}", customers, spark.sparkContext.master,
             frame.rdd.getNumPartitions(), len(archive) // 1024)
    decided = frame.mapInArrow(_decider(shipped),
                               OUTPUT_DDL if campaign is None else CAMPAIGN_DDL)
    staging = _sibling(out, f".{_basename(out)}.tmp-{uuid.uuid4().hex}")
    records = _sibling(out, f".{_basename(out)}.log-{uuid.uuid4().hex}")
    logging_too = campaign is not None and campaign.log is not None
    if logging_too:  # two writes from one pass of decisions
        decided = decided.persist()
    stop = threading.Event()
    watcher = threading.Thread(target=_report_progress,
                               args=(spark, stop, progress, progress_seconds), daemon=True)
    watcher.start()
    try:
        decided.select(*OUTPUT_SCHEMA.names).write.parquet(staging)
        if logging_too:
            assert campaign is not None
            decided.select(LOG_COLUMN).where(f"{LOG_COLUMN} IS NOT NULL").write.parquet(records)
            decided.unpersist()
            log.info("campaign %s: decided in %.1fs; logging from the driver",
                     campaign.campaign_id, time.perf_counter() - started)
            logging_started = time.perf_counter()
            _log_records(spark, records, campaign)
            log.info("campaign %s: log written in %.1fs", campaign.campaign_id,
                     time.perf_counter() - logging_started)
    except BaseException:
        _delete(spark, staging)
        raise
    finally:
        stop.set()
        watcher.join()
        if logging_too:
            _delete(spark, records)
    rows = spark.read.parquet(staging).count()  # from the part files' footers
    _rename(spark, staging, out)
    shipped.archive.destroy()
    return BatchResult(total, rows, time.perf_counter() - started)


def _log_records(spark: SparkSession, path: str, campaign: SparkCampaign) -> None:
    """Stream the written log records to `campaign.log` in batches (one partition at a time
    reaches the driver, never the whole log)."""
    assert campaign.log is not None
    batch: list[DecisionRecord] = []
    sent = 0
    for row in spark.read.parquet(path).toLocalIterator(prefetchPartitions=True):
        batch.append(record_of_json(row[0]))
        if len(batch) >= campaign.log_batch:
            campaign.log(batch)
            sent += len(batch)
            log.info("campaign %s: %s decisions handed to the log", campaign.campaign_id,
                     f"{sent:,}")
            batch = []
    if batch:
        campaign.log(batch)


def _report_progress(spark: SparkSession, stop: threading.Event,
                     progress: Callable[[int, int], None] | None, every: float) -> None:
    """Log (and report) finished / all tasks of the running stages until `stop` is set."""
    tracker = spark.sparkContext.statusTracker()
    while not stop.wait(every):
        done = tasks = 0
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                done, tasks = done + info.numCompletedTasks, tasks + info.numTasks
        if tasks:
            log.info("spark: %d / %d tasks done", done, tasks)
            if progress:
                progress(done, tasks)


# Output paths go through Hadoop's FileSystem, so the same rename works on a local disk, HDFS
# or an object store's connector.

def _fs_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return hadoop_path.getFileSystem(conf), hadoop_path


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _sibling(path: str, name: str) -> str:
    head = path.rstrip("/").rsplit("/", 1)
    return name if len(head) == 1 else f"{head[0]}/{name}"


def _delete(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _fs_path(spark, path)
    fs.delete(hadoop_path, True)


def _rename(spark: SparkSession, staging: str, out: str) -> None:
    """Move the finished folder into place, replacing an older output of the same name."""
    fs, source = _fs_path(spark, staging)
    _, target = _fs_path(spark, out)
    if fs.exists(target):
        fs.delete(target, True)
    if not fs.rename(source, target):
        fs.delete(source, True)
        raise OSError(f"could not move the finished output into place at {out}")
