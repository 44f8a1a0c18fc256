"""`nba inventory`: load stock into the shared state store, or show stock and launch holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand
from nba.commands.loading import StoreTable, add_load_parser
from nba.settings import CliSettings

if TYPE_CHECKING:
    from state import StateStore

EXAMPLES = ("examples:\n  nba inventory load data/inventory.parquet     # replace all stock "
            "rows\n  nba inventory load new.parquet --if-empty      # only into an empty "
            "store\n  nba inventory show                           # stock and launch "
            "holds\n\nLive updates while serving: PUT /v1/inventory (admin token); the "
            "next decision\nsees them in every worker.")


def _held(store: StateStore) -> str | None:
    if not store.stock_snapshot().rows:
        return None
    return f"stock (version {store.inventory_version()})"


def _load(store: StateStore, file: Path) -> str:
    from datetime import UTC, datetime

    from features import io
    from state.rows import stock_rows

    rows = stock_rows(io.read_inventory(file))
    count = store.replace_inventory(rows, now=datetime.now(UTC))
    return (f"loaded {count:,} stock rows from {file} into {store.url} (version "
            f"{store.inventory_version()})")


def _show(store: StateStore) -> None:
    from datetime import UTC, datetime

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


TABLE = StoreTable("inventory", "an inventory parquet", _held, _load, _show)


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba inventory`."""
    add_load_parser(add, settings, TABLE,
                    "Load stock into the shared state store (what the service reads live), or "
                    "show stock and launch holds.", EXAMPLES,
                    what="show the store", held="stock")
