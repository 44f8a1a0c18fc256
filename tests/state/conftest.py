"""One store per test on each backend (the `store_url` fixture lives in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from state import StateStore, open_store
from state.schema import ACTIVE, launches, reservations


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    """An open, empty store."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def ledger(store: StateStore) -> Callable[[str], tuple[int, int]]:
    """Reads a launch's `held` counter and its active reservations straight from the tables.

    The two must always agree: every path that changes a reservation adjusts the counter.
    """
    def read(offer_id: str) -> tuple[int, int]:
        with store.db.engine.connect() as conn:
            held = conn.execute(select(launches.c.held)
                                .where(launches.c.offer_id == offer_id)).scalar_one()
            active = conn.execute(select(func.count()).select_from(reservations)
                                  .where(reservations.c.offer_id == offer_id,
                                         reservations.c.status.in_(ACTIVE))).scalar_one()
        return held, active

    return read
