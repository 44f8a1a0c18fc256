"""`nba batch-score`: every customer of a file, decided by the service's own code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba batch-score --customers data/customers.parquet --out "
            "tonight.parquet\n  nba batch-score --customers big.parquet --out out.parquet "
            "--channel email --limit 1 \\\n      --model-uri models:/nba-policy/3\n\n"
            "Writes one row per customer and rank: customer_id, rank, offer_id (null when "
            "nothing\nis worth sending), expected_incremental_value, uplift, reason. "
            "Streams in chunks,\ndecided by one worker process per core "
            "(--workers); the output appears only when\nthe whole run succeeded.")


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
    result = batch_score(policy, args.customers, args.out, context, stock, args.chunk_size,
                         progress, workers)
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s ({uri}{', with stock' if stock else ', no stock check'})")
    return 0
