"""Campaign scoring on Apache Spark: the local engine's decisions, one Arrow batch at a time.

The driver validates the customers' schema, takes the policy (already loaded from the registry
by the caller, so the champion alias is resolved once), packs its saved files into bytes and
broadcasts them once; each executor's Python worker unpacks them once and decides every Arrow
batch of its partitions with `training.batch`'s own chunk decision code (the one decision
core), against the stock and launch snapshot taken at job start (shipped in the task closure).
So Spark's output is the local engine's: same columns, same rows.

`mlflow.pyfunc.spark_udf` is not used: it allows one output row per input row, decides without
stock, and turns null offer ids into the string "nan".
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from decisioning.core import NO_SETTINGS
from decisioning.decision import DecisionContext, DecisionSettings
from decisioning.snapshot import EMPTY, StateSnapshot
from features.errors import ContractError
from features.schema import kind_of
from training.batch import BatchResult, Job, check_customers_file, decide_chunk
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
            # one LightGBM thread: Spark runs one task per core already
            _, frame, _ = decide_chunk(job, batch, 1)
            yield pa.RecordBatch.from_pandas(frame, schema=OUTPUT_SCHEMA, preserve_index=False)

    return decide


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
                progress_seconds: float = 5.0, partitions: int | None = None) -> BatchResult:
    """Score every customer of `customers` (a parquet file or folder) into `out`, on Spark.

    `out` becomes a parquet folder (one part file per task); it appears only when the whole
    job succeeded (written beside it under a temporary name, then renamed). `progress`
    hears (finished tasks, tasks) every `progress_seconds` while the job runs. `partitions`:
    spread the customers over this many tasks (default: Spark's input splits, ~128 MB each).
    """
    started = time.perf_counter()
    frame = _check_schema(spark, customers, policy)
    total = frame.count()
    if partitions:
        frame = frame.repartition(partitions)
    archive = policy_archive(policy)
    shipped = _Shipped(spark.sparkContext.broadcast(archive),
                       hashlib.sha256(archive).hexdigest(), context, snapshot, settings)
    log.info("scoring %s customers from %s on %s in %d partitions (policy %d KB, broadcast "
             "once)", f"{total:,}", customers, spark.sparkContext.master,
             frame.rdd.getNumPartitions(), len(archive) // 1024)
    decided = frame.mapInArrow(_decider(shipped), OUTPUT_DDL)
    staging = _sibling(out, f".{_basename(out)}.tmp-{uuid.uuid4().hex}")
    stop = threading.Event()
    watcher = threading.Thread(target=_report_progress,
                               args=(spark, stop, progress, progress_seconds), daemon=True)
    watcher.start()
    try:
        decided.write.parquet(staging)
    except BaseException:
        _delete(spark, staging)
        raise
    finally:
        stop.set()
        watcher.join()
    rows = spark.read.parquet(staging).count()  # from the part files' footers
    _rename(spark, staging, out)
    shipped.archive.destroy()
    return BatchResult(total, rows, time.perf_counter() - started)


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
