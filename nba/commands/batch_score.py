"""`nba batch-score`: every customer of a file, decided by the one decision core; with
--campaign, a campaign whose sends are logged decisions."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nba.commands.common import (
    AddCommand,
    CliError,
    add_at_flag,
    add_data_flag,
    add_registry_flags,
    add_state_flag,
    open_state,
    parse_at,
)
from nba.settings import CliSettings

if TYPE_CHECKING:
    from decisioning.decision import DecisionContext
    from decisioning.snapshot import StateSnapshot
    from training.package import Policy

EXAMPLES = ("examples:\n  nba batch-score --customers data/customers.parquet --out "
            "tonight.parquet\n  nba batch-score --customers big.parquet --out out.parquet "
            "--channel email --limit 1 \\\n      --model-uri models:/nba-policy/3\n\n"
            "Writes one row per customer and rank: customer_id, rank, offer_id (null when "
            "nothing\nis worth sending), expected_incremental_value, uplift, reason. "
            "Streams in chunks,\ndecided by one worker process per core "
            "(--workers); the output appears only when\nthe whole run succeeded.\n\n"
            "--engine spark decides the same rows on Apache Spark (--spark-master, or the "
            "master\nspark-submit sets: see docs/scale.md); --out is then a parquet folder. "
            "--campaign works\non both engines; --budget on the local one only.")


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
    p.add_argument("--campaign", default=None, metavar="ID",
                   help="log the sends as a campaign's decisions, deciding against the state "
                        "store (letters, digits, '.', '_', '-')")
    p.add_argument("--dry-run", action="store_true",
                   help="with --campaign: decide against the state store but log nothing")
    add_state_flag(p, settings, "with --campaign: the state store read and logged to")
    add_at_flag(p)
    p.add_argument("--budget", type=float, default=None, metavar="AMOUNT",
                   help="total spend of the sends (contact cost + each offer's cost): keep the "
                        "sends with the most expected incremental profit per unit of spend")
    p.add_argument("--max-contacts", type=int, default=None, metavar="N",
                   help="at most N sends (offers) in the whole list")
    p.add_argument("--contact-cost", type=float, default=0.0, metavar="AMOUNT",
                   help="what one send costs on this channel, counted in --budget (default 0)")
    p.set_defaults(handler=run, decision_settings=settings.decision_settings())


CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def run(args: argparse.Namespace) -> int:
    """Score the file and write the ranked offers (and log a campaign's decisions)."""
    from decisioning.decision import DecisionContext
    from decisioning.snapshot import StateSnapshot
    from features import io
    from features.catalog import CHANNELS
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
    if args.campaign is not None and not CAMPAIGN_ID.match(args.campaign):
        raise CliError(f"--campaign '{args.campaign}': use 1 to 64 letters, digits, '.', '_' "
                       "or '-'")
    budget = _budget(args)
    if args.dry_run and args.campaign is None:
        raise CliError("--dry-run needs --campaign (without it nothing is logged anyway)")
    if args.engine != "spark" and args.out.is_dir():  # checked before scoring, not after
        raise CliError(f"--out {args.out}: is a directory; give the output parquet file's path")
    if args.engine == "spark" and budget is not None:
        raise CliError("--engine spark does not take --budget/--max-contacts: a budget picks "
                       "the best sends across ALL customers at once (a global greedy over "
                       "every candidate), which Spark's independent batches cannot; run it on "
                       "the local engine (docs/scale.md)")
    client = registry.configure(args.tracking_uri)
    uri = args.model_uri or registry.model_uri(args.model_name)
    try:
        uri, version = _pinned(client, uri)
        policy = registry.load_policy(uri)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None

    def progress(done: int, total: int, seconds: float) -> None:
        print(f"  scored {done:,} / {total:,} customers ({done / max(total, 1):.0%}), "
              f"{done / max(seconds, 1e-9):,.0f}/s", file=sys.stderr, flush=True)

    context = DecisionContext(args.channel, parse_at(args.at), args.limit)
    if args.campaign is not None:
        return _run_campaign(args, policy, uri, version, context, workers, progress, budget)
    inventory = args.inventory or args.data_dir / io.INVENTORY
    snapshot = StateSnapshot()
    if str(inventory) != "none" and inventory.exists():
        snapshot = StateSnapshot(stock=snapshot_of(io.read_inventory(inventory)))
    if args.engine == "spark":
        return _run_spark(args, policy, context, snapshot, uri)
    result = batch_score(policy, args.customers, args.out, context, snapshot, args.chunk_size,
                         progress, workers, args.decision_settings, budget=budget)
    stock = snapshot.stock is not None
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s ({uri}{', with stock' if stock else ', no stock check'})")
    return 0


def _run_spark(args: argparse.Namespace, policy: Policy, context: DecisionContext,
               snapshot: StateSnapshot, uri: str, campaign: Any = None) -> Any:
    """`--engine spark`: the same decisions, written by Spark as a parquet folder (with a
    `training.spark_score.SparkCampaign`: its result, printed by the caller)."""
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
        result = spark_score(spark, policy, str(args.customers), str(args.out), context,
                             snapshot, args.decision_settings,
                             progress=lambda done, tasks: print(
                                 f"  spark: {done:,} / {tasks:,} tasks done "
                                 f"({time.perf_counter() - started:.0f}s)",
                                 file=sys.stderr, flush=True),
                             partitions=args.partitions, campaign=campaign)
    finally:
        if ours:
            spark.stop()
    if campaign is not None:
        return result
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s on Spark {spark.version} ({uri}"
          f"{', with stock' if snapshot.stock is not None else ', no stock check'})")
    return 0


def _budget(args: argparse.Namespace) -> Any:
    """The campaign's Budget from --budget, --max-contacts and --contact-cost (None: none)."""
    from decisioning.budget import Budget

    if args.budget is not None and not args.budget >= 0:
        raise CliError(f"--budget must be a number >= 0, got {args.budget}")
    if args.max_contacts is not None and args.max_contacts < 0:
        raise CliError(f"--max-contacts must be >= 0, got {args.max_contacts}")
    if not args.contact_cost >= 0:
        raise CliError(f"--contact-cost must be a number >= 0, got {args.contact_cost}")
    if args.budget is None and args.max_contacts is None:
        return None
    return Budget(args.budget, args.max_contacts, args.contact_cost)


def _pinned(client: Any, uri: str) -> tuple[str, str]:
    """The URI pinned to a version (an alias may move during the run), and that version."""
    from training import registry

    match = re.match(r"^models:/([^/@]+)@(.+)$", uri)
    if match:
        ref = registry.get_alias(client, match[1], match[2])
        if ref is None:
            raise CliError(f"no version of '{match[1]}' has alias '{match[2]}'; train one "
                           "with `nba train` or promote with `nba promote`")
        return f"models:/{ref.name}/{ref.version}", str(ref.version)
    match = re.match(r"^models:/([^/@]+)/(\d+)$", uri)
    return uri, match[2] if match else uri


def _run_campaign(args: argparse.Namespace, policy: Any, uri: str, version: str,
                  context: Any, workers: int, progress: Any, budget: Any) -> int:
    """Decide every customer against one state-store snapshot; log them unless a dry run."""
    from datetime import timedelta

    from decisioning.launch import launch_distributions, launch_statuses
    from decisioning.snapshot import ContactHistory, StateSnapshot
    from features import io
    from training.batch import Campaign, batch_score

    catalog = policy.catalog
    caps = catalog.contact_policy
    now = context.now
    with open_state(args.state_url) as store:
        state = store.campaign_state(
            channel=args.channel, now=now,
            contacts_since=now - timedelta(hours=caps.window_hours) if caps else None,
            declines_since=now - timedelta(days=caps.decline_days) if caps else None)
        distributions = {}
        if any(o.launch is not None and o.launch.min_customer_value is None
               for o in catalog.offers):
            # the derived launch floor ranks customers as the service does: over its table
            table = policy.customers(io.read_customers(args.data_dir / io.CUSTOMERS,
                                                       policy.spec))
            distributions = launch_distributions(catalog, table)
        snapshot = StateSnapshot(state.stock, launch_statuses(catalog, state.held,
                                                              distributions, now))
        contacts = {cid: ContactHistory(state.contacts.get(cid, 0), state.declines.get(cid, {}))
                    for cid in state.contacts.keys() | state.declines.keys()}
        logged = [0]

        def log(records: list) -> None:
            logged[0] += store.log_campaign(records, count_contacts=caps is not None)

        if args.engine == "spark":
            from training.spark_score import SparkCampaign

            result = _run_spark(args, policy, context, snapshot, uri, SparkCampaign(
                args.campaign, version, contacts, None if args.dry_run else log,
                args.chunk_size))
        else:
            campaign = Campaign(args.campaign, version, contacts,
                                None if args.dry_run else log)
            result = batch_score(policy, args.customers, args.out, context, snapshot,
                                 args.chunk_size, progress, workers, args.decision_settings,
                                 campaign, budget)
    what = ("dry run: nothing logged" if args.dry_run else
            f"logged {logged[0]:,} new decisions, {result.customers - logged[0]:,} already "
            "logged")
    engine = " on Spark" if args.engine == "spark" else ""
    print(f"campaign {args.campaign}: wrote {result.rows:,} rows for {result.customers:,} "
          f"customers to {args.out} in {result.seconds:.1f}s{engine} ({uri}, stock and "
          "contact caps "
          f"from the state store; {what})")
    return 0
