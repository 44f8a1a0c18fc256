"""The state database: engine, URL, pragmas, transactions, and the hot path's read and write.

Every repository (inventory, launches, contacts, the decision log) takes one `Database` and
works through its public transactions; none owns a connection of its own. Writers are
serialized where correctness needs it, by the database rather than by us:

- SQLite: sqlite3's own transaction handling is switched off and every write transaction starts
  with BEGIN IMMEDIATE, so it holds the database write lock from its first statement. Writers
  queue on busy_timeout instead of failing with SQLITE_BUSY when a read lock cannot be upgraded.
  WAL mode lets readers run alongside the writer.
- PostgreSQL (READ COMMITTED): a write first locks the row it hinges on (the launch row for
  reservations, the inventory version row for inventory), so the statements after it see every
  committed change and never interleave with another writer of the same launch. Locks are
  always taken launch row first, then reservation rows, so writers cannot deadlock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from state import partitions
from state.budget import Timeouts, timed_connection_class
from state.errors import StateStoreError, describe
from state.hotpath import CappedWrite, HotPath
from state.partitions import MissingPartitions, Partitions
from state.records import DecisionState, LaunchCounts, utc
from state.schema import (
    CONFIRMED,
    PARTITIONED,
    RESERVED,
    card_index_ddl,
    inventory_meta,
    metadata,
    partitioned_metadata,
)
from state.urls import DEFAULT_URL, mask_url

logger = logging.getLogger(__name__)

_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}
_READ_ONLY = "nba_state_read_only"  # execution option: a read transaction (SQLite: deferred)
_SCHEMA_LOCK = 0x6E62_6173_7461  # advisory lock key: workers opening at once create tables once
_BUSY_TIMEOUT_MS = 30_000
_CONNECT_TIMEOUT_S = 10


class Database:
    """One state database shared by every worker; build it with `Database.open(url)`.

    After gunicorn forks, call `after_fork()` in the worker.
    """

    def __init__(self, engine: Engine, *, url: str, backend: str,
                 partitioned: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.url = url  # password masked: safe to log
        self.backend = backend  # "sqlite" | "postgresql"
        #: the time-partitioned tables' months (PostgreSQL; no tables on SQLite)
        self.partitions = Partitions(engine, partitioned, url=url)
        # the per-decision read and log write, off SQLAlchemy Core (see state.hotpath)
        self.hot = HotPath(engine, backend=backend, url=url)

    @classmethod
    def open(cls, url: str = DEFAULT_URL, *, timeouts: Timeouts | None = None) -> Database:
        """Open (and create if needed) the state database at `url`.

        `url` is sqlite:///path/state.db (one host, shared by the workers through a WAL file)
        or postgresql://user@host:port/db (several hosts); query parameters are passed to the
        driver, e.g. ?options=-csearch_path%3Dmy_schema. Raises StateStoreError naming the URL
        (password masked) when it is malformed or the database cannot be reached or set up.

        `timeouts` (the service's): PostgreSQL statement and lock time-outs and a client that
        stops waiting at the thread's deadline (state.budget); SQLite lock waits bounded by the
        budget. Without them (the CLI) statements may run as long as they need.
        """
        masked = mask_url(url)
        parsed, backend = _parse(url, masked)
        try:
            engine = _create_engine(parsed, backend, timeouts)
        except (NoSuchModuleError, ImportError) as exc:
            raise StateStoreError(masked, f"database driver not available ({exc})") from None
        try:
            partitioned = _create_schema(engine, backend)
        except DBAPIError as exc:
            engine.dispose()
            raise StateStoreError(masked, f"cannot open: {describe(exc)}") from exc
        logger.info("state store %s opened (%s)", masked, backend)
        if backend == "postgresql" and partitioned != frozenset(PARTITIONED):
            logger.warning("state store %s: %s not partitioned by time (made before "
                           "partitioning); pruning deletes rows one by one until `nba state "
                           "partition` migrates them", masked,
                           " and ".join(sorted(set(PARTITIONED) - partitioned)))
        db = cls(engine, url=masked, backend=backend, partitioned=partitioned)
        try:
            db.partitions.refresh(now=datetime.now(UTC))
        except DBAPIError as exc:
            engine.dispose()
            raise StateStoreError(masked, f"cannot open: {describe(exc)}") from exc
        except StateStoreError:
            engine.dispose()
            raise
        return db

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def after_fork(self) -> None:
        """Drop pooled connections inherited from the parent without closing them.

        A forked child must never use (or close) the parent's sockets and SQLite handles; the
        pool opens fresh ones on first use.
        """
        self.hot.forget()
        self.engine.dispose(close=False)

    def close(self) -> None:
        """Close every pooled connection (and this thread's hot-path connection)."""
        self.hot.close()
        self.engine.dispose()

    # ------------------------------------------------------------ transactions

    def insert(self, table: Table) -> Any:
        """An INSERT with this dialect's ON CONFLICT support."""
        return _insert(table, self.backend)

    @contextmanager
    def write(self, what: str) -> Iterator[Connection]:
        """One write transaction; database failures become StateStoreError naming `what`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StateStoreError(self.url, f"{what} failed: {describe(exc)}") from exc

    @contextmanager
    def read(self, what: str, *, consistent: bool = False) -> Iterator[Connection]:
        """One read transaction; `consistent` gives every statement the same snapshot.

        SQLite read transactions always see one snapshot; PostgreSQL needs REPEATABLE READ for
        that (a read-only transaction there never fails to serialize).
        """
        options: dict[str, Any] = {_READ_ONLY: True}
        if consistent and self.backend == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**options)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            raise StateStoreError(self.url, f"{what} failed: {describe(exc)}") from exc

    # ------------------------------------------------------------ the hot path

    def decision_state(self, *, launch_ids: Sequence[str] = (), customer_id: str = "",
                       channel: str = "", contacts_since: datetime | None = None,
                       declines_since: datetime | None = None,
                       now: datetime | None = None, with_profile: bool = False) -> DecisionState:
        """Everything one decision reads, in ONE statement (the per-request hot path).

        The inventory version, the counts of the given launches (holds overdue at `now`, which
        they need, no longer count), and when a `since` is given the customer's contacts on the
        channel and declines per offer, all at one snapshot. Every read of those counts goes
        through here, so there is one query for each. `with_profile`: the customer's stored
        profile too (state.profiles), so keeping customers in the store costs no extra trip.
        """
        if launch_ids and now is None:
            raise ValueError("launch counts need `now` (overdue holds no longer count)")
        raw = self.hot.decision_state(
            launch_ids=list(launch_ids), customer_id=customer_id, channel=channel,
            contacts_since=None if contacts_since is None else utc(contacts_since),
            declines_since=None if declines_since is None else utc(declines_since),
            now=None if now is None else utc(now), with_profile=with_profile)
        counts = {o: LaunchCounts(o, n, raw.held.get((o, RESERVED), 0),
                                  raw.held.get((o, CONFIRMED), 0))
                  for o, n in raw.supply.items()}
        profile = None if raw.profile is None else json.loads(raw.profile)
        return DecisionState(raw.inventory_version, counts, raw.contacts, raw.declines, profile)

    def record_capped(self, items: Sequence[CappedWrite]) -> list[Any]:
        """Count contacts and write decisions atomically per customer (HotPath.record_capped).

        A decision's time is known only once it is built, inside the transaction: one that
        needs a partition not made yet rolls the transaction back, the partition is made
        (outside it: creating one locks the whole table) and the write runs again.
        """
        items = [replace(i, since=utc(i.since)) for i in items]
        for _ in range(3):
            try:
                return self.hot.record_capped([replace(i, build=self._guard(i.build))
                                               for i in items])
            except MissingPartitions as missing:
                self.partitions.ensure(missing.months)
        raise StateStoreError(self.url, "record decisions failed: partitions vanished as they "
                                        "were made")

    def record_decisions(self, rows: Sequence[dict[str, Any]],
                         contact_rows: Sequence[dict[str, Any]]) -> None:
        """Insert decision-log rows and their contact rows in one short committed transaction."""
        self.ensure_partitions(rows, contact_rows)
        self.hot.record_decisions(rows, contact_rows)

    def ensure_partitions(self, decision_rows: Sequence[dict[str, Any]] = (),
                          contact_rows: Sequence[dict[str, Any]] = ()) -> None:
        """Make the partitions these rows go to, if any is missing (a no-op unpartitioned)."""
        self.partitions.ensure(
            self.partitions.missing("decisions", (r["decided_at"] for r in decision_rows))
            | self.partitions.missing("contacts", (r["contacted_at"] for r in contact_rows)))

    def partition(self) -> list[str]:
        """Partition by time the tables of a PostgreSQL store made before partitioning
        (state.partitions.migrate, one transaction); what was done, [] when nothing was left.
        """
        if self.backend != "postgresql":
            raise StateStoreError(self.url, "only PostgreSQL stores are partitioned "
                                            "(SQLite keeps plain tables)")
        with self.write("partition the decision log") as conn:
            done = partitions.migrate(conn, now=datetime.now(UTC))
            self.partitions.tables = partitions.partitioned_tables(conn)
        self.partitions.refresh(now=datetime.now(UTC))
        return done

    def _guard(self, build: Any) -> Any:
        """`build`, raising MissingPartitions when what it built has no partition yet."""
        if not self.partitions.tables:
            return build

        def guarded(counted: int) -> Any:
            row, contact_rows, result = build(counted)
            missing = (self.partitions.missing("decisions", [row["decided_at"]])
                       | self.partitions.missing("contacts",
                                                 (r["contacted_at"] for r in contact_rows)))
            if missing:
                raise MissingPartitions(missing)
            return row, contact_rows, result
        return guarded


def _parse(url: str, masked: str) -> tuple[URL, str]:
    expected = "expected sqlite:///path/state.db or postgresql://user@host:port/db"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StateStoreError(masked, f"not a database URL; {expected}") from None
    if parsed.drivername in _SQLITE_SCHEMES:
        path = parsed.database
        if not path or path == ":memory:" or path.startswith("file:"):
            raise StateStoreError(masked, "needs a database file shared by every worker "
                                          "(e.g. sqlite:///state.db), not an in-memory database")
        if not Path(path).parent.is_dir():
            raise StateStoreError(masked, f"directory {str(Path(path).parent)!r} does not exist")
        return parsed.set(drivername="sqlite+pysqlite"), "sqlite"
    if parsed.drivername in _POSTGRES_SCHEMES:
        if not parsed.database:
            raise StateStoreError(masked, "no database name; " + expected)
        return parsed.set(drivername="postgresql+psycopg"), "postgresql"
    raise StateStoreError(masked, f"unsupported scheme {parsed.drivername!r}; {expected}")


def _create_engine(url: URL, backend: str, timeouts: Timeouts | None = None) -> Engine:
    if backend == "sqlite":
        engine = create_engine(url)
        busy_ms = _BUSY_TIMEOUT_MS if timeouts is None else timeouts.sqlite_busy_ms
        event.listen(engine, "connect",
                     lambda dbapi_connection, record: _sqlite_on_connect(dbapi_connection,
                                                                         busy_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": _CONNECT_TIMEOUT_S}
    # pre-ping: a pooled connection that died with a server restart is replaced, not reused
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if timeouts is not None:
        limits = timeouts
        event.listen(engine, "do_connect",
                     lambda dialect, record, cargs, cparams: _timed_connect(cargs, cparams,
                                                                            limits))
    return engine


def _timed_connect(cargs: list[Any], cparams: dict[str, Any], timeouts: Timeouts) -> Any:
    """A PostgreSQL connection with the service's server-side time-outs and client deadline."""
    limits = f"-c statement_timeout={timeouts.statement_ms} -c lock_timeout={timeouts.lock_ms}"
    cparams["options"] = f"{cparams['options']} {limits}" if cparams.get("options") else limits
    return timed_connection_class().connect(*cargs, **cparams)


def _sqlite_on_connect(dbapi_connection: Any, busy_ms: int) -> None:
    # sqlite3 would emit its own deferred BEGIN (and none before a SELECT); _sqlite_on_begin
    # emits ours instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        # WAL is a property of the file; switching needs a lock, so only when not yet set.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and then writes
    # fails with SQLITE_BUSY (no waiting) when another writer got there in between.
    deferred = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN DEFERRED" if deferred else "BEGIN IMMEDIATE")


def _insert(table: Table, backend: str) -> Any:
    return (postgresql.insert if backend == "postgresql" else sqlite.insert)(table)


def _create_schema(engine: Engine, backend: str) -> frozenset[str]:
    """Create the tables that are missing; which are partitioned by time (PostgreSQL)."""
    with engine.begin() as conn:
        if backend == "sqlite":
            metadata.create_all(conn)
            partitioned: frozenset[str] = frozenset()
        else:
            # concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            partitioned_metadata.create_all(conn)  # a store made before keeps its plain tables
            partitioned = partitions.partitioned_tables(conn)
        conn.execute(text(card_index_ddl(backend)))  # an expression index: not in metadata
        conn.execute(_insert(inventory_meta, backend).values(id=1, version=0)
                     .on_conflict_do_nothing(index_elements=[inventory_meta.c.id]))
    return partitioned
