"""Customer profiles: the customers.parquet rows, kept in the state store instead of in workers.

A profile is the customer's row of the data contract as one JSON document. The decision reads
it in the same statement as its live state (state.hotpath), so keeping customers here adds no
round trip, and a worker's memory no longer grows with the customer base.

A bulk load is all-or-nothing: the rows are copied (PostgreSQL COPY, in batches) into a
temporary staging table, then replace every profile in one transaction. Readers keep seeing
the old profiles until that commits (no table lock is taken: DELETE and INSERT, not TRUNCATE);
a load that fails anywhere leaves the old profiles untouched, and is simply run again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from state.database import Database
from state.errors import StateStoreError, describe
from state.records import utc
from state.schema import CARD_KEY, HAS_CARD, PROFILES_STAGING, profile_events, profiles

#: Rows sent per COPY / executemany batch: bounded memory whatever the file's size.
BATCH_ROWS = 50_000


def encode(values: dict[str, Any]) -> str:
    """A profile document: JSON with NaN as null (JSON has no NaN; null reads back as missing)."""
    return json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v
                       for k, v in values.items()}, separators=(",", ":"), allow_nan=False)


def decode(document: str) -> dict[str, Any]:
    """The profile's {column: value}."""
    value: dict[str, Any] = json.loads(document)
    return value


@dataclass(frozen=True)
class ProfileEvent:
    """One customer event as the store keeps it (what it means: `Apply`, features.events)."""

    event_id: str
    customer_id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


#: (the profile or None, the event) -> the profile after it: the caller's pure update rule
Apply = Callable[[dict[str, Any] | None, ProfileEvent], dict[str, Any]]

APPLIED = "applied"
DUPLICATE = "duplicate"


class Profiles:
    """The profile repository on one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count(self) -> int:
        """How many customers have a profile."""
        with self.db.read("count profiles") as conn:
            return int(conn.execute(select(func.count()).select_from(profiles)).scalar_one())

    def estimated_count(self) -> int:
        """About how many customers have a profile: PostgreSQL's planner estimate when it has
        one (no scan: a count of 10M rows takes seconds), the exact count otherwise."""
        if self.db.backend == "postgresql":
            with self.db.read("estimate profiles") as conn:
                estimate = conn.execute(text(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
                    {"name": profiles.name}).scalar_one_or_none()
            if estimate is not None and estimate > 0:
                return int(estimate)
        return self.count()

    def get(self, customer_id: str) -> dict[str, Any] | None:
        """One customer's profile (None when there is none)."""
        with self.db.read("read a profile") as conn:
            document = conn.execute(select(profiles.c.data)
                                    .where(profiles.c.customer_id == customer_id)
                                    ).scalar_one_or_none()
        return None if document is None else decode(document)

    def by_card(self, card: str) -> list[tuple[str, dict[str, Any]]]:
        """Profiles whose `loyalty_card`, normalized, is `card` (already normalized): at most
        two, so a caller can tell a unique card from a shared one. An index lookup
        (state.schema.CARD_KEY) whether the profile was bulk-loaded or made by an event."""
        backend = self.db.backend
        query = text(f"SELECT customer_id, data FROM {profiles.name} "
                     f"WHERE {CARD_KEY[backend]} = :card AND {HAS_CARD[backend]} LIMIT 2")
        # no ORDER BY: PostgreSQL would walk the primary key in order (filtering every row)
        # instead of probing the card index
        with self.db.read("find a profile by card") as conn:
            rows = conn.execute(query, {"card": card}).all()
        return sorted((cid, decode(document)) for cid, document in rows)

    def sample(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` profiles (the first by id): what a model load summarizes."""
        with self.db.read("sample profiles") as conn:
            rows = conn.execute(select(profiles.c.customer_id, profiles.c.data)
                                .order_by(profiles.c.customer_id).limit(limit)).all()
        return [(cid, decode(document)) for cid, document in rows]

    def apply(self, events: Sequence[ProfileEvent], update: Apply, *,
              now: datetime) -> list[str]:
        """Apply each event once to its customer's profile, in one transaction.

        An event id already recorded is a DUPLICATE and changes nothing (idempotent); otherwise
        the profile (None for a customer without one: the event creates it) is read under a
        row lock, `update` computes the new one, and it is written with the event's record.
        Returns APPLIED or DUPLICATE per event, in order.
        """
        results: list[str] = []
        with self.db.write("apply customer events") as conn:
            for event in events:
                inserted = conn.execute(
                    self.db.insert(profile_events).values(
                        event_id=event.event_id, customer_id=event.customer_id,
                        type=event.type, occurred_at=utc(event.occurred_at),
                        received_at=utc(now), payload=json.dumps(event.payload, default=str))
                    .on_conflict_do_nothing(index_elements=[profile_events.c.event_id])
                    .returning(profile_events.c.event_id)).first()
                if inserted is None:  # (rowcount is not reliable here: -1 on psycopg)
                    results.append(DUPLICATE)
                    continue
                # a row to lock even for a new customer: concurrent first events serialize
                conn.execute(self.db.insert(profiles).values(
                    customer_id=event.customer_id, data="{}", updated_at=utc(now))
                    .on_conflict_do_nothing(index_elements=[profiles.c.customer_id]))
                query = select(profiles.c.data).where(
                    profiles.c.customer_id == event.customer_id)
                if self.db.backend == "postgresql":
                    query = query.with_for_update()
                current = decode(conn.execute(query).scalar_one())
                after = update(current or None, event)
                conn.execute(profiles.update()
                             .where(profiles.c.customer_id == event.customer_id)
                             .values(data=encode(after), updated_at=utc(now)))
                results.append(APPLIED)
        return results

    def replace(self, batches: Iterable[Sequence[tuple[str, str]]], *, now: datetime) -> int:
        """Replace every profile with `batches` of (customer_id, JSON document); all or nothing.

        Returns the number of profiles now stored. A duplicate customer id fails the whole load
        (the staging table's primary key); StateStoreError on any database failure.
        """
        dbapi_error: type[Exception] = self.db.engine.dialect.loaded_dbapi.Error
        with self.db.write("load profiles") as conn:
            _create_staging(conn, self.db.backend)
            copy = _copy_postgres if self.db.backend == "postgresql" else _insert_sqlite
            for batch in batches:
                try:
                    if batch:
                        copy(conn, batch)
                except dbapi_error as exc:  # COPY runs on the driver's cursor, not Core's
                    raise StateStoreError(self.db.url,
                                          f"load profiles failed: {describe(exc)}") from exc
            conn.execute(profiles.delete())
            conn.execute(text(f"INSERT INTO {profiles.name} (customer_id, data, updated_at) "
                              f"SELECT customer_id, data, :now FROM {PROFILES_STAGING}"),
                         {"now": _bind_time(conn, now)})
            conn.execute(text(f"DROP TABLE {PROFILES_STAGING}"))
            return int(conn.execute(select(func.count()).select_from(profiles)).scalar_one())


def _create_staging(conn: Connection, backend: str) -> None:
    # temporary: private to this connection, gone if the load dies half-way
    conn.execute(text(f"DROP TABLE IF EXISTS {PROFILES_STAGING}"))
    conn.execute(text(f"CREATE TEMPORARY TABLE {PROFILES_STAGING} "
                      "(customer_id TEXT PRIMARY KEY, data TEXT NOT NULL)"))


def _copy_postgres(conn: Connection, batch: Sequence[tuple[str, str]]) -> None:
    raw: Any = conn.connection.dbapi_connection  # psycopg's own: COPY is not in the DBAPI
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {PROFILES_STAGING} (customer_id, data) FROM STDIN") as copy:
        for row in batch:
            copy.write_row(row)


def _insert_sqlite(conn: Connection, batch: Sequence[tuple[str, str]]) -> None:
    conn.exec_driver_sql(f"INSERT INTO {PROFILES_STAGING} (customer_id, data) VALUES (?, ?)",
                         list(batch))


def _bind_time(conn: Connection, now: datetime) -> Any:
    """`now` as the updated_at column stores it on this dialect (UTC; SQLite: text)."""
    dialect = conn.dialect
    process = profiles.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    value = utc(now)
    return process(value) if process is not None else value
