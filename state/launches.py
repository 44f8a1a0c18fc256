"""Launch reservations: holding, confirming and releasing units of a limited launch.

A launch row records its supply and `held`, the reservations in an active status; every write
path changes `held` in the same transaction as the reservation rows, and the database's unique
index refuses a second active unit for one customer of one launch.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, case, insert, select, update

from state.database import Database
from state.records import LaunchCounts, Reservation, utc
from state.schema import ACTIVE, CONFIRMED, EXPIRED, RELEASED, RESERVED, launches, reservations


class Launches:
    """The launch repository of one state database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def reserve(self, *, offer_id: str, supply: int, customer_id: str, decision_id: str,
                hold_seconds: int, now: datetime) -> Reservation | None:
        """Hold one unit of a launch for a customer, never more than `supply` in total.

        Records `supply` (the catalog may change it) and expires this launch's overdue holds
        first. A customer who already holds (or bought) a unit gets that one back with
        created=False. Returns None when sold out.
        """
        now = utc(now)
        if supply < 0:
            raise ValueError(f"supply must be >= 0, got {supply}")
        if hold_seconds <= 0:
            raise ValueError(f"hold_seconds must be > 0, got {hold_seconds}")
        with self._db.write("reserve") as conn:
            self._upsert_launch(conn, offer_id, supply, now)
            _expire_launch(conn, offer_id, now)
            existing = conn.execute(
                select(reservations).where(reservations.c.offer_id == offer_id,
                                           reservations.c.customer_id == customer_id,
                                           reservations.c.status.in_(ACTIVE)).limit(1)
            ).first()
            if existing is not None:
                return _reservation(existing)
            taken = conn.execute(
                update(launches)
                .where(launches.c.offer_id == offer_id, launches.c.held < launches.c.supply)
                .values(held=launches.c.held + 1, updated_at=now)
            ).rowcount
            if not taken:
                return None
            held = Reservation(uuid.uuid4().hex, offer_id, customer_id, decision_id, RESERVED,
                               now + timedelta(seconds=hold_seconds), created=True)
            conn.execute(insert(reservations).values(
                reservation_id=held.reservation_id, offer_id=offer_id, customer_id=customer_id,
                decision_id=decision_id, status=RESERVED, created_at=now,
                expires_at=held.expires_at, updated_at=now))
        return held

    def confirm(self, *, decision_id: str, offer_id: str, now: datetime) -> Reservation | None:
        """Turn a live hold into a sale; idempotent for a confirmed one.

        Returns None when there is no such hold or it was released or has expired (an expired
        hold cannot be confirmed even if its unit is still free).
        """
        now = utc(now)
        with self._db.write("confirm") as conn:
            if not _lock_launch(conn, offer_id):
                return None
            row = _find(conn, decision_id=decision_id, offer_id=offer_id)
            if row is None or row.status in (RELEASED, EXPIRED):
                return None
            if row.status == CONFIRMED:
                return _reservation(row)
            if row.expires_at <= now:
                _finish(conn, row, EXPIRED, now)
                return None
            conn.execute(update(reservations)
                         .where(reservations.c.reservation_id == row.reservation_id)
                         .values(status=CONFIRMED, updated_at=now))
        return replace(_reservation(row), status=CONFIRMED)

    def release(self, *, decision_id: str, offer_id: str, now: datetime) -> Reservation | None:
        """Give a held unit back; idempotent. Returns the reservation as it now stands.

        A hold already past its expiry is marked expired (its unit is freed either way); a
        confirmed sale is left alone. None when there is no such reservation.
        """
        now = utc(now)
        with self._db.write("release") as conn:
            if not _lock_launch(conn, offer_id):
                return None
            row = _find(conn, decision_id=decision_id, offer_id=offer_id)
            if row is None:
                return None
            if row.status != RESERVED:
                return _reservation(row)
            status = EXPIRED if row.expires_at <= now else RELEASED
            _finish(conn, row, status, now)
        return replace(_reservation(row), status=status)

    def expire_holds(self, *, now: datetime) -> int:
        """Expire every overdue hold of every launch; returns how many."""
        now = utc(now)
        with self._db.write("expire holds") as conn:
            due = conn.execute(
                select(reservations.c.offer_id).distinct()
                .where(reservations.c.status == RESERVED, reservations.c.expires_at <= now)
            ).scalars().all()
            expired = 0
            for offer_id in sorted(due):  # one lock order for every writer
                _lock_launch(conn, offer_id)
                expired += _expire_launch(conn, offer_id, now)
        return expired

    def counts(self, offer_id: str, *, now: datetime) -> LaunchCounts | None:
        """Supply, live holds and sales of a launch; None if it was never reserved."""
        return self._db.decision_state(launch_ids=[offer_id], now=now).launches.get(offer_id)

    def all_counts(self, *, now: datetime) -> dict[str, LaunchCounts]:
        """Counts of every launch that has had a reservation, by offer id."""
        with self._db.read("list launches") as conn:
            offer_ids = conn.execute(select(launches.c.offer_id)
                                     .order_by(launches.c.offer_id)).scalars().all()
        found = self._db.decision_state(launch_ids=offer_ids, now=now).launches
        return {offer_id: found[offer_id] for offer_id in offer_ids if offer_id in found}

    def reservations(self, offer_id: str) -> list[Reservation]:
        """Every reservation of a launch, oldest first, whatever its status."""
        with self._db.read("read reservations") as conn:
            rows = conn.execute(select(reservations)
                                .where(reservations.c.offer_id == offer_id)
                                .order_by(reservations.c.created_at,
                                          reservations.c.reservation_id)).all()
        return [_reservation(row) for row in rows]

    def _upsert_launch(self, conn: Connection, offer_id: str, supply: int,
                       now: datetime) -> None:
        # The conflict update also locks the launch row on PostgreSQL until commit: every
        # reservation of this launch queues behind it.
        stmt = self._db.insert(launches).values(offer_id=offer_id, supply=supply, held=0,
                                                updated_at=now)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[launches.c.offer_id],
            set_={"supply": stmt.excluded.supply, "updated_at": stmt.excluded.updated_at}))


def _lock_launch(conn: Connection, offer_id: str) -> bool:
    """Lock a launch row for this transaction (SQLite already holds the write lock)."""
    found = conn.execute(select(launches.c.offer_id).where(launches.c.offer_id == offer_id)
                         .with_for_update()).first()
    return found is not None


def _expire_launch(conn: Connection, offer_id: str, now: datetime) -> int:
    """Mark a launch's overdue holds expired and give their units back; how many."""
    expired = conn.execute(
        update(reservations)
        .where(reservations.c.offer_id == offer_id, reservations.c.status == RESERVED,
               reservations.c.expires_at <= now)
        .values(status=EXPIRED, updated_at=now)
    ).rowcount
    if expired:
        conn.execute(update(launches).where(launches.c.offer_id == offer_id)
                     .values(held=launches.c.held - expired))
    return expired


def _find(conn: Connection, *, decision_id: str, offer_id: str) -> Row[Any] | None:
    """The reservation a decision made for a launch, a live one first if there are several."""
    live_first = case((reservations.c.status.in_(ACTIVE), 0), else_=1)
    return conn.execute(
        select(reservations)
        .where(reservations.c.decision_id == decision_id,
               reservations.c.offer_id == offer_id)
        .order_by(live_first, reservations.c.created_at.desc())
        .limit(1)
    ).first()


def _finish(conn: Connection, row: Row[Any], status: str, now: datetime) -> None:
    """End a live hold (released or expired) and give its unit back."""
    conn.execute(update(reservations)
                 .where(reservations.c.reservation_id == row.reservation_id)
                 .values(status=status, updated_at=now))
    conn.execute(update(launches).where(launches.c.offer_id == row.offer_id)
                 .values(held=launches.c.held - 1, updated_at=now))


def _reservation(row: Row[Any]) -> Reservation:
    return Reservation(row.reservation_id, row.offer_id, row.customer_id, row.decision_id,
                       row.status, row.expires_at, created=False)
