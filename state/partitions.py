"""PostgreSQL partitions of the decision log and contacts: one per calendar month (UTC).

The two tables that grow with every decision are RANGE-partitioned by time on PostgreSQL
(state.schema.partitioned_metadata), so pruning drops whole months instead of deleting rows
one by one (state.retention). Partitions are created ahead (this month and the next
`MONTHS_AHEAD`) when a store is opened, and on demand when a write carries a time no partition
holds yet (a backfill, a clock in the future); each process remembers which months exist, so
the hot path pays a set lookup. There is no DEFAULT partition: a row outside every partition is
refused by PostgreSQL rather than parked where a later partition could not be created.

A store made before partitioning keeps its plain tables (everything works on them, pruning
deletes rows) until `migrate` turns each into a partitioned table whose first partition is
the old table, attached whole (`nba state partition`). SQLite stays unpartitioned.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from state.errors import StateStoreError, describe
from state.schema import PARTITIONED, partitioned_metadata

logger = logging.getLogger(__name__)

MONTHS_AHEAD = 2
#: advisory lock key held while partitions are created, dropped or migrated
LOCK = 0x6E62_6170_6172_74


class MissingPartitions(Exception):  # noqa: N818 - a signal between two functions, not an error
    """A row to write falls in months with no partition yet: (table, month start) pairs."""

    def __init__(self, months: set[tuple[str, datetime]]) -> None:
        self.months = months
        super().__init__(", ".join(partition_name(t, m) for t, m in sorted(months)))


@dataclass(frozen=True)
class Partition:
    """One partition: its table, name and time range (None = unbounded below)."""

    table: str
    name: str
    lower: datetime | None
    upper: datetime


def month_start(when: datetime) -> datetime:
    """The first instant (UTC) of the month `when` falls in."""
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """The first instant of the month after `month` (a month start)."""
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def partition_name(table: str, month: datetime) -> str:
    """`decisions_p2030_06`: the partition of `table` holding that month."""
    return f"{table}_p{month:%Y_%m}"


def partitioned_tables(conn: Connection) -> frozenset[str]:
    """Which of the time-partitioned tables are partitioned in this schema (search_path)."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.oid = ANY(ARRAY[to_regclass('decisions'), to_regclass('contacts')])"))
    return frozenset(rows.scalars())


def create(conn: Connection, table: str, months: Iterable[datetime]) -> None:
    """Create the monthly partitions of `table` that do not exist yet (idempotent)."""
    for month in sorted(set(months)):
        conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {partition_name(table, month)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"))


def ahead(now: datetime) -> list[datetime]:
    """The months created ahead at `now`: this one and the next MONTHS_AHEAD."""
    months = [month_start(now)]
    for _ in range(MONTHS_AHEAD):
        months.append(next_month(months[-1]))
    return months


_BOUND = re.compile(r"FROM \((?:MINVALUE|'([^']+)')\) TO \('([^']+)'\)")


def listing(conn: Connection, table: str) -> list[Partition]:
    """The partitions of `table`, oldest first."""
    conn.execute(text("SET LOCAL timezone = 'UTC'"))  # bounds printed in UTC
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:table)"),
        {"table": table}).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        if match is None:  # a DEFAULT partition made by hand: never dropped by us
            continue
        lower, upper = match.groups()
        found.append(Partition(table, name, None if lower is None else _timestamp(lower),
                               _timestamp(upper)))
    return sorted(found, key=lambda p: p.upper)


def _timestamp(value: str) -> datetime:
    """A bound as PostgreSQL prints it in UTC ('2030-06-01 00:00:00+00')."""
    return datetime.fromisoformat(value.replace("+00", "+00:00") if value.endswith("+00")
                                  else value).astimezone(UTC)


def drop(conn: Connection, partition: Partition) -> None:
    """Drop one partition (its rows go with it, at the cost of a catalog change)."""
    conn.execute(text(f"DROP TABLE {partition.name}"))


class Partitions:
    """The months that have a partition, per table, as this process knows them."""

    def __init__(self, engine: Engine, tables: frozenset[str], *, url: str) -> None:
        self.tables = tables
        self._engine = engine
        self._url = url
        self._known: set[tuple[str, datetime]] = set()
        #: per table, the end of a partition unbounded below (a migrated old table)
        self._floor: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def missing(self, table: str, times: Iterable[datetime]) -> set[tuple[str, datetime]]:
        """(table, month) pairs of `times` with no partition known to exist."""
        if table not in self.tables:
            return set()
        floor = self._floor.get(table)
        return {(table, m) for m in {month_start(t) for t in times}
                if (table, m) not in self._known and (floor is None or m >= floor)}

    def ensure(self, months: set[tuple[str, datetime]]) -> None:
        """Create the partitions of these (table, month) pairs, each in its own transaction.

        Creating a partition locks its whole table until commit: one at a time, so a creator
        never holds one table while waiting for a writer that holds the other (a deadlock).
        """
        for table, month in sorted(months):
            try:
                with self._engine.begin() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
                    create(conn, table, [month])
            except DBAPIError as exc:
                raise StateStoreError(self._url, f"creating partition "
                                      f"{partition_name(table, month)} failed: "
                                      f"{describe(exc)}") from exc
            logger.info("partition %s ready", partition_name(table, month))
            with self._lock:
                self._known.add((table, month))

    def refresh(self, *, now: datetime) -> None:
        """Learn which months exist, then make the ones ahead that do not (at open)."""
        if not self.tables:
            return
        with self._engine.begin() as conn:
            found = [p for t in self.tables for p in listing(conn, t)]
        with self._lock:
            self._known |= {(p.table, p.lower) for p in found if p.lower is not None}
            self._floor.update((p.table, p.upper) for p in found if p.lower is None)
        self.ensure(set().union(*(self.missing(t, ahead(now)) for t in self.tables)))

    def ensure_times(self, table: str, times: Iterable[datetime]) -> None:
        """Make sure every time in `times` has a partition of `table`."""
        self.ensure(self.missing(table, times))

    def forget(self, partition: Partition) -> None:
        """A dropped partition: its months are created again if a write needs them."""
        with self._lock:
            if partition.lower is None:
                self._floor.pop(partition.table, None)
            else:
                self._known.discard((partition.table, partition.lower))


def migrate(conn: Connection, *, now: datetime) -> list[str]:
    """Turn plain `decisions` and `contacts` into partitioned tables; what was done.

    Each plain table is renamed `<table>_legacy` and attached whole as the partition holding
    everything before the month after its newest row (PostgreSQL scans it to check the range
    and builds its new key, holding the table meanwhile: run it in a quiet hour), and
    monthly partitions follow from there. The outcomes' foreign key to decisions goes (a key
    of a partitioned table must hold the partition key). Run under the partition lock, in the
    caller's transaction: it all happens or none of it. Idempotent.
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
    done: list[str] = []
    plain = [t for t in PARTITIONED if t not in partitioned_tables(conn)]
    if "decisions" in plain:
        for (name,) in conn.execute(text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = to_regclass('outcomes') AND confrelid = to_regclass('decisions')")):
            conn.execute(text(f'ALTER TABLE outcomes DROP CONSTRAINT "{name}"'))
            done.append(f"dropped outcomes' foreign key {name}")
    for table in plain:
        column = PARTITIONED[table]
        legacy = f"{table}_legacy"
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {legacy}"))
        # its key lacks the time: attaching builds the partitioned table's key in its place
        for (key,) in conn.execute(text(
                "SELECT conname FROM pg_constraint WHERE contype = 'p' "
                "AND conrelid = to_regclass(:t)"), {"t": legacy}).all():
            conn.execute(text(f'ALTER TABLE {legacy} DROP CONSTRAINT "{key}"'))
        # index and key names are schema-wide: free them for the partitioned table
        for (index,) in conn.execute(text(
                "SELECT indexrelid::regclass::text FROM pg_index "
                "WHERE indrelid = to_regclass(:t)"), {"t": legacy}).all():
            conn.execute(text(f'ALTER INDEX "{index}" RENAME TO "{index}_legacy"'))
        partitioned_metadata.tables[table].create(conn)
        newest = conn.execute(text(f"SELECT max({column}) FROM {legacy}")).scalar()
        start = next_month(month_start(newest if newest is not None else now))
        conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {legacy} "
                          f"FOR VALUES FROM (MINVALUE) TO ('{start.isoformat()}')"))
        if table == "contacts":  # new ids continue after the old ones
            conn.execute(text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                              "(SELECT coalesce(max(id), 0) + 1 FROM contacts_legacy), false)"))
        months = [m for m in ahead(now) if m >= start] or []
        create(conn, table, [start, *months])
        done.append(f"{table}: partitioned by {column}; the old table is partition {legacy} "
                    f"(rows before {start:%Y-%m-%d})")
    return done
