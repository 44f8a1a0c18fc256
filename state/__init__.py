"""Shared state across gunicorn workers and hosts: inventory, launch reservations, contacts,
the decision log.

One interface (`StateStore`), two backends chosen by URL: SQLite in WAL mode for one host,
PostgreSQL for several.
"""

from __future__ import annotations

from state.errors import StateStoreError
from state.log import DecisionLog, DecisionRecord, Outcome
from state.store import (
    DEFAULT_URL,
    LaunchCounts,
    Reservation,
    StateStore,
    StockRow,
    StockSnapshot,
    mask_url,
    open_store,
)

__all__ = [
    "DecisionLog",
    "DecisionRecord",
    "Outcome",
    "DEFAULT_URL",
    "LaunchCounts",
    "Reservation",
    "StateStore",
    "StateStoreError",
    "StockRow",
    "StockSnapshot",
    "mask_url",
    "open_store",
]
