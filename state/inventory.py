"""Inventory: stock rows per (sku, size, colour, location) and the version every write moves.

Readers poll the one-row version cheaply and re-read the rows only when it moved.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from state.database import Database
from state.records import StockRow, StockSnapshot, utc
from state.schema import inventory, inventory_meta


class Inventory:
    """The stock repository of one state database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Atomically replace all inventory with `rows` (a full snapshot load); returns the count.

        Raises ValueError on negative stock or a key given twice.
        """
        now = utc(now)
        values = _values(rows, now)
        with self._db.write("replace inventory") as conn:
            _bump_version(conn, now)
            conn.execute(delete(inventory))
            if values:
                conn.execute(insert(inventory), values)
        return len(values)

    def upsert(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Set on_hand for each (sku, size, color, location) of `rows`, adding new keys; atomic.

        Returns the number of rows written; the version moves once per non-empty batch.
        """
        now = utc(now)
        values = _values(rows, now)
        if not values:
            return 0
        stmt = self._db.insert(inventory)
        stmt = stmt.on_conflict_do_update(
            index_elements=[inventory.c.sku, inventory.c.size, inventory.c.color,
                            inventory.c.location],
            set_={"on_hand": stmt.excluded.on_hand, "updated_at": stmt.excluded.updated_at},
        )
        with self._db.write("upsert inventory") as conn:
            _bump_version(conn, now)
            conn.execute(stmt, values)
        return len(values)

    def version(self) -> int:
        """The inventory version: moves forward whenever inventory changes (a one-row read)."""
        with self._db.read("read inventory version") as conn:
            return _version(conn)

    def snapshot(self) -> StockSnapshot:
        """All inventory rows and the version they were read at, from one transaction."""
        with self._db.read("read inventory", consistent=True) as conn:
            version = _version(conn)
            result = conn.execute(select(inventory.c.sku, inventory.c.size, inventory.c.color,
                                         inventory.c.location, inventory.c.on_hand)
                                  .order_by(inventory.c.sku, inventory.c.location,
                                            inventory.c.size, inventory.c.color))
            rows = tuple(StockRow(sku, _none(size), _none(color), _none(location), on_hand)
                         for sku, size, color, location, on_hand in result)
        return StockSnapshot(rows, version)


def _bump_version(conn: Connection, now: datetime) -> None:
    # First statement of every inventory write: on PostgreSQL it locks the version row, so
    # inventory writers queue in order instead of deadlocking on each other's rows.
    conn.execute(update(inventory_meta).where(inventory_meta.c.id == 1)
                 .values(version=inventory_meta.c.version + 1, updated_at=now))


def _version(conn: Connection) -> int:
    version = conn.execute(select(inventory_meta.c.version)
                           .where(inventory_meta.c.id == 1)).scalar()
    return int(version or 0)


def _values(rows: Iterable[StockRow], now: datetime) -> list[dict[str, Any]]:
    """Table rows of `rows` ('' for an absent key part); ValueError on a bad or repeated row."""
    values: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in rows:
        on_hand = operator.index(row.on_hand)
        if on_hand < 0:
            raise ValueError(f"negative stock for {row}; on_hand must be >= 0")
        if not row.sku:
            raise ValueError(f"empty sku in {row}")
        key = (row.sku, row.size or "", row.color or "", row.location or "")
        if key in values:
            raise ValueError(f"inventory key {key} given twice")
        values[key] = {"sku": key[0], "size": key[1], "color": key[2], "location": key[3],
                       "on_hand": on_hand, "updated_at": now}
    return list(values.values())


def _none(value: str) -> str | None:
    return value or None
