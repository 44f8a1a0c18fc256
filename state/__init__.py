"""Shared state across gunicorn workers and hosts: inventory, launch reservations, contacts,
the decision log.

One interface (`StateStore`, a thin facade), two backends chosen by URL: SQLite in WAL mode for
one host, PostgreSQL for several. `state.database` owns the engine, transactions and the hot
path; `state.inventory`, `state.launches`, `state.contacts` and `state.log` are the
repositories on it; `state.retention` prunes old history.

The names below load on first use, so `import state` (and `state.urls`, all the CLI needs
before it parses its flags) does not pull in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from state.urls import DEFAULT_URL, mask_url

if TYPE_CHECKING:
    from state.database import Database
    from state.errors import StateStoreError
    from state.log import DecisionLog, DecisionRecord, Outcome
    from state.records import (
        DecisionState,
        LaunchCounts,
        Reservation,
        StockRow,
        StockSnapshot,
    )
    from state.store import StateStore, open_store

#: public name -> the module that defines it
_LAZY = {
    "Database": "state.database",
    "DecisionLog": "state.log",
    "DecisionRecord": "state.log",
    "DecisionState": "state.records",
    "LaunchCounts": "state.records",
    "Outcome": "state.log",
    "Reservation": "state.records",
    "StateStore": "state.store",
    "StateStoreError": "state.errors",
    "StockRow": "state.records",
    "StockSnapshot": "state.records",
    "open_store": "state.store",
}

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'state' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
