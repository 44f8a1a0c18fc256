"""`nba batch-score`: every customer of a file, decided by the service's own code."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

if TYPE_CHECKING:
    from service.decide import DecisionContext, StockLookup
    from training.package import Policy

EXAMPLES = ("examples:\n  nba batch-score --customers data/customers.parquet --out "
            "tonight.parquet\n  nba batch-score --customers big.parquet --out out.parquet "
            "--channel email --limit 1 \\\n      --model-uri models:/nba-policy/3\n\n"
            "Writes one row per customer and rank: customer_id, rank, offer_id (null when "
            "nothing\nis worth sending), expected_incremental_value, uplift, reason. "
            "Streams in chunks,\ndecided by one worker process per core "
            "(--workers); the output appears only when\nthe whole run succeeded.\n\n"
            "--engine spark decides the same rows on Apache Spark (--spark-master, or the "
            "master\nspark-submit sets: see docs/scale.md); --out is then a parquet folder.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba batch-score`."""
    p = add("batch-score", "Score every customer of a customers.parquet-shaped file with the "
                           "champion (or any model URI), through the service's decision code.",
            EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("--customers", type=Path, required=True, help="customers-shaped parquet file")
    p.add_argument("--out", type=Path, required=True, help="output parquet file")
    p.add_argument("--model-uri", default=None,
                   help="MLflow model URI (default models:/<model-name>@champion)")
    p.add_argument("--limit", type=int, default=3, help="offers per customer (default 3)")
    p.add_argument("--channel", default="email", help="channel the campaign goes out on "
                                                      "(default email)")
    p.add_argument("--inventory", type=Path, default=None,
                   help="inventory parquet for stock checks (default <data-dir>/inventory.parquet"
                        " if present; 'none' to skip)")
    p.add_argument("--chunk-size", type=int, default=50_000,
                   help="customers per chunk; memory is flat in the file size (default "
                        "%(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes deciding chunks side by side, one LightGBM thread each "
                        "(default: one per core; 1 = all in this process)")
    p.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="local: worker processes on this machine; spark: Apache Spark, same "
                        "decisions, --out a parquet folder (default %(default)s)")
    p.add_argument("--spark-master", default=None,
                   help="Spark master for --engine spark, e.g. local[2] (default: the one "
                        "spark-submit sets, else local[*])")
    p.add_argument("--partitions", type=int, default=None,
                   help="with --engine spark: tasks to spread the customers over (default: "
                        "Spark's input splits, ~128 MB of parquet each)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Score the file and write the ranked offers."""
    from datetime import UTC, datetime

    from features import io
    from features.catalog import CHANNELS
    from service.decide import DecisionContext
    from state.rows import snapshot_of
    from training import registry
    from training.batch import batch_score, default_workers

    if args.channel not in CHANNELS:
        raise CliError(f"unknown channel '{args.channel}'; use one of {list(CHANNELS)}")
    if not 1 <= args.limit <= 20:
        raise CliError("--limit must lie between 1 and 20")
    if args.partitions is not None and args.partitions < 1:
        raise CliError("--partitions must be at least 1")
    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise CliError("--workers must be at least 1")
    registry.configure(args.tracking_uri)
    uri = args.model_uri or registry.model_uri(args.model_name)
    try:
        policy = registry.load_policy(uri)
    except Exception as exc:
        raise CliError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None
    inventory = args.inventory or args.data_dir / io.INVENTORY
    stock = None
    if str(inventory) != "none" and inventory.exists():
        stock = snapshot_of(io.read_inventory(inventory))

    def progress(done: int, total: int, seconds: float) -> None:
        print(f"  scored {done:,} / {total:,} customers ({done / max(total, 1):.0%}), "
              f"{done / max(seconds, 1e-9):,.0f}/s", file=sys.stderr, flush=True)

    context = DecisionContext(args.channel, datetime.now(UTC), args.limit)
    if args.engine == "spark":
        return _run_spark(args, policy, context, stock, uri)
    result = batch_score(policy, args.customers, args.out, context, stock, args.chunk_size,
                         progress, workers)
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s ({uri}{', with stock' if stock else ', no stock check'})")
    return 0


def _run_spark(args: argparse.Namespace, policy: Policy, context: DecisionContext,
               stock: StockLookup | None, uri: str) -> int:
    """`--engine spark`: the same decisions, written by Spark as a parquet folder."""
    try:
        from pyspark.sql import SparkSession

        from training.spark_score import session, spark_score
    except ImportError:
        raise CliError("--engine spark needs the scale extra: pip install "
                       "'nba-decisioning[scale]' (and a Java 17 runtime)") from None

    ours = SparkSession.getActiveSession() is None  # spark-submit's or a caller's: leave it be
    spark = session(args.spark_master, batch_size=args.chunk_size)
    started = time.perf_counter()
    try:
        result = spark_score(spark, policy, str(args.customers), str(args.out), context, stock,
                             progress=lambda done, tasks: print(
                                 f"  spark: {done:,} / {tasks:,} tasks done "
                                 f"({time.perf_counter() - started:.0f}s)",
                                 file=sys.stderr, flush=True),
                             partitions=args.partitions)
    finally:
        if ours:
            spark.stop()
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s on Spark {spark.version} ({uri}"
          f"{', with stock' if stock else ', no stock check'})")
    return 0
