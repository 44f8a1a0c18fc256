"""`nba inventory`: load stock into the shared state store, or show stock and launch holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from nba.commands.common import AddCommand, CliError, add_state_flag, open_state
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba inventory load data/inventory.parquet     # replace all stock "
            "rows\n  nba inventory load new.parquet --if-empty      # only into an empty "
            "store\n  nba inventory show                           # stock and launch "
            "holds\n\nLive updates while serving: PUT /v1/inventory (admin token); the "
            "next decision\nsees them in every worker.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba inventory`."""
    p = add("inventory", "Load stock into the shared state store (what the service reads "
                         "live), or show stock and launch holds.", EXAMPLES)
    p.add_argument("action", choices=("load", "show"), help="load a file, or show the store")
    p.add_argument("file", nargs="?", type=Path, default=None,
                   help="inventory parquet in the data contract (for load)")
    p.add_argument("--if-empty", action="store_true",
                   help="load only when the store holds no stock yet (make run uses this)")
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load a file into the store, or print its stock and launch holds."""
    from datetime import UTC, datetime

    from features import io
    from state.rows import stock_rows

    with open_state(args.state_url) as store:
        if args.action == "load":
            if args.file is None:
                raise CliError("nba inventory load needs a FILE (an inventory parquet)")
            if args.if_empty and store.stock_snapshot().rows:
                print(f"{store.url} already holds stock (version "
                      f"{store.inventory_version()}); not loading {args.file}")
                return 0
            rows = stock_rows(io.read_inventory(args.file))
            count = store.replace_inventory(rows, now=datetime.now(UTC))
            print(f"loaded {count:,} stock rows from {args.file} into {store.url} (version "
                  f"{store.inventory_version()})")
            return 0
        snapshot = store.stock_snapshot()
        by_sku: dict[str, list[int]] = {}
        for row in snapshot.rows:
            online_store = by_sku.setdefault(row.sku, [0, 0])
            online_store[row.location is not None] += row.on_hand
        print(f"{store.url}: inventory version {snapshot.version}, {len(snapshot.rows):,} rows")
        for sku, (online, in_stores) in sorted(by_sku.items()):
            print(f"  {sku:<16} online {online:>7,}   in stores {in_stores:>7,}")
        now = datetime.now(UTC)
        for offer_id, counts in store.all_launch_counts(now=now).items():
            print(f"  launch {offer_id}: {counts.reserved} held, {counts.confirmed} sold, "
                  f"{counts.remaining} of {counts.supply} left")
    return 0
