"""`nba customers`: load customer profiles into the shared state store, or count them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand
from nba.commands.loading import StoreTable, add_load_parser
from nba.settings import CliSettings

if TYPE_CHECKING:
    from state import StateStore

EXAMPLES = ("examples:\n  nba customers load data/customers.parquet    # replace every "
            "profile\n  nba customers load new.parquet --if-empty     # only into an empty "
            "store\n  nba customers show                           # how many are stored\n\n"
            "A load is all or nothing: a failure leaves the old profiles serving; run it again.")


def _held(store: StateStore) -> str | None:
    count = store.profiles.count()
    return f"{count:,} customer profiles" if count else None


def _load(store: StateStore, file: Path) -> str:
    import time
    from datetime import UTC, datetime

    from features import io
    from features.customers import profile_documents

    started = time.perf_counter()
    frame = io.read_customers(file)  # validated: errors name the file and column
    count = store.profiles.replace(profile_documents(frame), now=datetime.now(UTC))
    return (f"loaded {count:,} customer profiles from {file} into {store.url} in "
            f"{time.perf_counter() - started:.1f}s")


def _show(store: StateStore) -> None:
    print(f"{store.url}: {store.profiles.count():,} customer profiles")


TABLE = StoreTable("customers", "a customers parquet", _held, _load, _show)


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba customers`."""
    add_load_parser(add, settings, TABLE,
                    "Load customer profiles (customers.parquet) into the shared state store "
                    "the service decides from, or count them.", EXAMPLES,
                    what="count profiles", held="profiles")
