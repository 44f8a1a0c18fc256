"""Shared state across gunicorn workers and hosts: inventory, launch reservations, contacts,
the decision log.

One interface (`StateStore`, a thin facade), two backends chosen by URL: SQLite in WAL mode for
one host, PostgreSQL for several. `state.database` owns the engine, transactions and the hot
path; `state.inventory`, `state.launches`, `state.contacts` and `state.log` are the
repositories on it; `state.retention` prunes old history.
"""

from __future__ import annotations

from state.database import DEFAULT_URL, Database, mask_url
from state.errors import StateStoreError
from state.log import DecisionLog, DecisionRecord, Outcome
from state.records import DecisionState, LaunchCounts, Reservation, StockRow, StockSnapshot
from state.store import StateStore, open_store

__all__ = [
    "DEFAULT_URL",
    "Database",
    "DecisionLog",
    "DecisionRecord",
    "DecisionState",
    "LaunchCounts",
    "Outcome",
    "Reservation",
    "StateStore",
    "StateStoreError",
    "StockRow",
    "StockSnapshot",
    "mask_url",
    "open_store",
]
