"""Campaigns as logged decisions: the consistent state a campaign decides against, and its
idempotent log write.

A campaign reads stock, launch holds and every customer's contact counts in ONE read
transaction (one snapshot), decides, and logs one decision per customer under a decision id
fixed by (campaign, customer). Logging again under the same ids inserts nothing and counts no
contact twice, so re-running a campaign (or finishing one that failed half-way) is safe.

On PostgreSQL the new rows go in with COPY (one stream per table per batch, several times the
rows/s of an INSERT per row: bench/bench_decision_log.py). COPY has no ON CONFLICT, and a
partitioned log's key holds the decision time, so two runs of one campaign could both pass the
"already logged?" check: campaign writers take one advisory lock, so one batch at a time
checks and writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select, text

from state.database import Database
from state.inventory import _none, _version
from state.log import DecisionRecord, _row
from state.records import StockRow, StockSnapshot, utc
from state.schema import (
    CONFIRMED,
    RESERVED,
    contacts,
    decisions,
    declines,
    inventory,
    reservations,
)

_IDS_PER_QUERY = 500  # bound parameters per IN (...) list: far below every backend's limit
_LOG_LOCK = 0x6E62_6163_616D_70  # advisory lock: one campaign batch checks and writes at a time
_CONTACT_COLUMNS = ("customer_id", "channel", "offer_id", "contacted_at")


@dataclass(frozen=True)
class CampaignState:
    """What a campaign decides against, read at one snapshot.

    `held`: launch units held or sold per offer; `contacts`: offers made per customer on the
    channel since the cap window opened; `declines`: per customer, declines per offer.
    """

    stock: StockSnapshot
    held: dict[str, int]
    contacts: dict[str, int]
    declines: dict[str, dict[str, int]]


def read_state(db: Database, *, channel: str, now: datetime,
               contacts_since: datetime | None, declines_since: datetime | None
               ) -> CampaignState:
    """Stock, launch holds and contact history for a campaign, in one consistent read."""
    now = utc(now)
    with db.read("read campaign state", consistent=True) as conn:
        version = _version(conn)
        stock = tuple(StockRow(sku, _none(size), _none(color), _none(location), on_hand)
                      for sku, size, color, location, on_hand in conn.execute(
                          select(inventory.c.sku, inventory.c.size, inventory.c.color,
                                 inventory.c.location, inventory.c.on_hand)))
        held: dict[str, int] = dict(conn.execute(
            select(reservations.c.offer_id, func.count())
            .where(or_(reservations.c.status == CONFIRMED,
                       (reservations.c.status == RESERVED) & (reservations.c.expires_at > now)))
            .group_by(reservations.c.offer_id)).all())
        counted: dict[str, int] = {}
        if contacts_since is not None:
            counted = dict(conn.execute(
                select(contacts.c.customer_id, func.count())
                .where(contacts.c.channel == channel,
                       contacts.c.contacted_at >= utc(contacts_since))
                .group_by(contacts.c.customer_id)).all())
        declined: dict[str, dict[str, int]] = defaultdict(dict)
        if declines_since is not None:
            for customer_id, offer_id, n in conn.execute(
                    select(declines.c.customer_id, declines.c.offer_id, func.count())
                    .where(declines.c.declined_at >= utc(declines_since))
                    .group_by(declines.c.customer_id, declines.c.offer_id)):
                declined[customer_id][offer_id] = int(n)
    return CampaignState(StockSnapshot(stock, version), {k: int(v) for k, v in held.items()},
                         {k: int(v) for k, v in counted.items()}, dict(declined))


def log_decisions(db: Database, records: Sequence[DecisionRecord], *,
                  count_contacts: bool) -> int:
    """Log the decisions not logged yet (by decision id) and count their offers as contacts,
    in one transaction; returns how many were new."""
    if not records:
        return 0
    first: dict[str, DecisionRecord] = {}
    for record in records:  # an id twice in one batch: the first wins (COPY would refuse both)
        first.setdefault(record.decision_id, record)
    unique = list(first.values())
    rows = [_row(r) for r in unique]
    db.ensure_partitions(rows, [{"contacted_at": r.decided_at} for r in unique])
    with db.write("log campaign decisions") as conn:
        if db.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOG_LOCK})
        seen = _logged(conn, [r["decision_id"] for r in rows])
        new = [(record, row) for record, row in zip(unique, rows, strict=True)
               if row["decision_id"] not in seen]
        touched = [{"customer_id": r.customer_id, "channel": r.channel, "offer_id": offer_id,
                    "contacted_at": r.decided_at}
                   for r, _ in new if count_contacts for offer_id in r.offer_ids]
        write = copy_rows if db.backend == "postgresql" else insert_rows
        write(conn, decisions, [row for _, row in new])
        write(conn, contacts, touched)
    return len(new)


def _logged(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the log already holds."""
    seen: set[str] = set()
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        seen.update(conn.execute(select(decisions.c.decision_id)
                                 .where(decisions.c.decision_id.in_(chunk))).scalars())
    return seen


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT rows (one executemany): SQLite's path, and the one COPY is measured against."""
    if rows:
        conn.execute(table.insert(), list(rows))


def copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Stream rows into a PostgreSQL table with COPY, in the connection's transaction.

    Values go through the columns' SQLAlchemy types first (UTC timestamps), then psycopg's
    own adaptation; the identity of `contacts.id` is left to its default.
    """
    if not rows:
        return
    names = list(_CONTACT_COLUMNS) if table is contacts else [c.name for c in table.c]
    dialect = conn.dialect
    binders = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as stream:
        for row in rows:
            stream.write_row([row.get(n) if bind is None else bind(row.get(n))
                              for n, bind in zip(names, binders, strict=True)])
