"""Shared decisioning state behind one interface: SQLite on one host, PostgreSQL across hosts.

Every public method is one transaction, so gunicorn workers (and hosts) never see half a change.
Writers are serialized where correctness needs it, by the database rather than by us:

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

import logging
import operator
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    case,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from state.budget import Timeouts, timed_connection_class
from state.errors import StateStoreError
from state.hotpath import HotPath

if TYPE_CHECKING:
    from state.log import DecisionLog
from state.schema import (
    ACTIVE,
    CONFIRMED,
    EXPIRED,
    RELEASED,
    RESERVED,
    contacts,
    declines,
    inventory,
    inventory_meta,
    launches,
    metadata,
    reservations,
)

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///state.db"

_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}
_READ_ONLY = "nba_state_read_only"  # execution option: a read transaction (SQLite: deferred)
_SCHEMA_LOCK = 0x6E62_6173_7461  # advisory lock key: workers opening at once create tables once
_BUSY_TIMEOUT_MS = 30_000
_CONNECT_TIMEOUT_S = 10
_MAX_STOCK_ANSWERS = 100_000  # per snapshot: sizes x colours x locations stay far below


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class StockRow:
    """One inventory row: None size/colour fits any; None location is online, else a store id."""

    sku: str
    size: str | None
    color: str | None
    location: str | None
    on_hand: int


@dataclass(frozen=True)
class StockSnapshot:
    """Inventory rows read at one version: immutable, in memory; a decide.StockLookup."""

    rows: tuple[StockRow, ...]
    version: int = 0
    _by_sku: Mapping[str, tuple[StockRow, ...]] = field(init=False, repr=False, compare=False)
    # answers already worked out: a snapshot never changes, and every decision asks again
    _answers: dict[tuple[str, str | None, str | None, str | None], int] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_sku: dict[str, list[StockRow]] = defaultdict(list)
        for row in self.rows:
            by_sku[row.sku].append(row)
        object.__setattr__(self, "_by_sku",
                           MappingProxyType({sku: tuple(rows) for sku, rows in by_sku.items()}))
        object.__setattr__(self, "_answers", {})

    @classmethod
    def from_rows(cls, rows: Iterable[StockRow], version: int = 0) -> StockSnapshot:
        """Build from any rows (tests, files); `version` is the store version they were read at."""
        return cls(tuple(rows), version)

    def units(self, sku: str, size: str | None, color: str | None,
              location: str | None) -> int:
        """Units of `sku` at exactly `location` (None = online) that fit the size and colour.

        A row with no size (or colour) fits any; a customer with no preference takes any.
        """
        key = (sku, size, color, location)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._count(sku, size, color, location)
            if len(self._answers) < _MAX_STOCK_ANSWERS:
                self._answers[key] = answer
        return answer

    def _count(self, sku: str, size: str | None, color: str | None,
               location: str | None) -> int:
        total = 0
        for row in self._by_sku.get(sku, ()):
            if row.location != location:
                continue
            if row.size is not None and size is not None and row.size != size:
                continue
            if row.color is not None and color is not None and row.color != color:
                continue
            total += row.on_hand
        return total


@dataclass(frozen=True)
class Reservation:
    """One customer's hold on one unit of a launch."""

    reservation_id: str
    offer_id: str
    customer_id: str
    decision_id: str
    status: str  # "reserved" | "confirmed" | "released" | "expired"
    expires_at: datetime
    created: bool  # False when an existing hold of this customer was returned


@dataclass(frozen=True)
class LaunchCounts:
    """Supply and use of one launch at a moment (overdue holds no longer count)."""

    offer_id: str
    supply: int
    reserved: int
    confirmed: int

    @property
    def remaining(self) -> int:
        """Units still free; never below 0 even if the catalog cut supply under what is held."""
        return max(0, self.supply - self.reserved - self.confirmed)


@dataclass(frozen=True)
class DecisionState:
    """What one decision reads from the store, read at one moment."""

    inventory_version: int
    launches: dict[str, LaunchCounts]  # launches that have had a reservation
    contacts: int  # offers made to the customer on the channel since the cap window began
    declines: dict[str, int]  # declines per offer within the decline window


# ---------------------------------------------------------------- the store


class StateStore:
    """Shared state for every worker: inventory, launch reservations, contact history.

    Build one with `open_store(url)`; after gunicorn forks, call `after_fork()` in the worker.
    """

    def __init__(self, engine: Engine, *, url: str, backend: str) -> None:
        self._engine = engine
        self.url = url
        self.backend = backend
        # the per-decision read and log write, off SQLAlchemy Core (see state.hotpath)
        self._hot = HotPath(engine, backend=backend, url=url)

    def __repr__(self) -> str:
        return f"StateStore({self.url!r})"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def after_fork(self) -> None:
        """Drop pooled connections inherited from the parent without closing them.

        A forked child must never use (or close) the parent's sockets and SQLite handles; the
        pool opens fresh ones on first use.
        """
        self._hot.forget()
        self._engine.dispose(close=False)

    def close(self) -> None:
        """Close every pooled connection (and this thread's hot-path connection)."""
        self._hot.close()
        self._engine.dispose()

    # ------------------------------------------------------------ inventory

    def replace_inventory(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Atomically replace all inventory with `rows` (a full snapshot load); returns the count.

        Raises ValueError on negative stock or a key given twice.
        """
        now = _utc(now)
        values = _inventory_values(rows, now)
        with self._write("replace inventory") as conn:
            self._bump_inventory_version(conn, now)
            conn.execute(delete(inventory))
            if values:
                conn.execute(insert(inventory), values)
        return len(values)

    def upsert_inventory(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Set on_hand for each (sku, size, color, location) of `rows`, adding new keys; atomic.

        Returns the number of rows written; the version moves once per non-empty batch.
        """
        now = _utc(now)
        values = _inventory_values(rows, now)
        if not values:
            return 0
        stmt = self._insert(inventory)
        stmt = stmt.on_conflict_do_update(
            index_elements=[inventory.c.sku, inventory.c.size, inventory.c.color,
                            inventory.c.location],
            set_={"on_hand": stmt.excluded.on_hand, "updated_at": stmt.excluded.updated_at},
        )
        with self._write("upsert inventory") as conn:
            self._bump_inventory_version(conn, now)
            conn.execute(stmt, values)
        return len(values)

    def inventory_version(self) -> int:
        """The inventory version: moves forward whenever inventory changes (a one-row read)."""
        with self._read("read inventory version") as conn:
            return _version(conn)

    def stock_snapshot(self) -> StockSnapshot:
        """All inventory rows and the version they were read at, from one transaction."""
        with self._read("read inventory", consistent=True) as conn:
            version = _version(conn)
            result = conn.execute(select(inventory.c.sku, inventory.c.size, inventory.c.color,
                                         inventory.c.location, inventory.c.on_hand)
                                  .order_by(inventory.c.sku, inventory.c.location,
                                            inventory.c.size, inventory.c.color))
            rows = tuple(StockRow(sku, _none(size), _none(color), _none(location), on_hand)
                         for sku, size, color, location, on_hand in result)
        return StockSnapshot(rows, version)

    def _bump_inventory_version(self, conn: Connection, now: datetime) -> None:
        # First statement of every inventory write: on PostgreSQL it locks the version row, so
        # inventory writers queue in order instead of deadlocking on each other's rows.
        conn.execute(update(inventory_meta).where(inventory_meta.c.id == 1)
                     .values(version=inventory_meta.c.version + 1, updated_at=now))

    # ------------------------------------------------------------ launches

    def reserve(self, *, offer_id: str, supply: int, customer_id: str, decision_id: str,
                hold_seconds: int, now: datetime) -> Reservation | None:
        """Hold one unit of a launch for a customer, never more than `supply` in total.

        Records `supply` (the catalog may change it) and expires this launch's overdue holds
        first. A customer who already holds (or bought) a unit gets that one back with
        created=False. Returns None when sold out.
        """
        now = _utc(now)
        if supply < 0:
            raise ValueError(f"supply must be >= 0, got {supply}")
        if hold_seconds <= 0:
            raise ValueError(f"hold_seconds must be > 0, got {hold_seconds}")
        with self._write("reserve") as conn:
            self._upsert_launch(conn, offer_id, supply, now)
            self._expire_launch(conn, offer_id, now)
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
        now = _utc(now)
        with self._write("confirm") as conn:
            if not self._lock_launch(conn, offer_id):
                return None
            row = self._find(conn, decision_id=decision_id, offer_id=offer_id)
            if row is None or row.status in (RELEASED, EXPIRED):
                return None
            if row.status == CONFIRMED:
                return _reservation(row)
            if row.expires_at <= now:
                self._finish(conn, row, EXPIRED, now)
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
        now = _utc(now)
        with self._write("release") as conn:
            if not self._lock_launch(conn, offer_id):
                return None
            row = self._find(conn, decision_id=decision_id, offer_id=offer_id)
            if row is None:
                return None
            if row.status != RESERVED:
                return _reservation(row)
            status = EXPIRED if row.expires_at <= now else RELEASED
            self._finish(conn, row, status, now)
        return replace(_reservation(row), status=status)

    def expire_holds(self, *, now: datetime) -> int:
        """Expire every overdue hold of every launch; returns how many."""
        now = _utc(now)
        with self._write("expire holds") as conn:
            due = conn.execute(
                select(reservations.c.offer_id).distinct()
                .where(reservations.c.status == RESERVED, reservations.c.expires_at <= now)
            ).scalars().all()
            expired = 0
            for offer_id in sorted(due):  # one lock order for every writer
                self._lock_launch(conn, offer_id)
                expired += self._expire_launch(conn, offer_id, now)
        return expired

    def launch_counts(self, offer_id: str, *, now: datetime) -> LaunchCounts | None:
        """Supply, live holds and sales of a launch; None if it was never reserved."""
        return self.decision_state(launch_ids=[offer_id], now=now).launches.get(offer_id)

    def decision_state(self, *, launch_ids: Sequence[str] = (), customer_id: str = "",
                       channel: str = "", contacts_since: datetime | None = None,
                       declines_since: datetime | None = None,
                       now: datetime | None = None) -> DecisionState:
        """Everything one decision reads, in ONE statement (the per-request hot path).

        The inventory version, the counts of the given launches (holds overdue at `now`, which
        they need, no longer count), and when a `since` is given the customer's contacts on the
        channel and declines per offer, all at one snapshot. Every read of those counts goes
        through here, so there is one query for each.
        """
        if launch_ids and now is None:
            raise ValueError("launch counts need `now` (overdue holds no longer count)")
        raw = self._hot.decision_state(
            launch_ids=list(launch_ids), customer_id=customer_id, channel=channel,
            contacts_since=None if contacts_since is None else _utc(contacts_since),
            declines_since=None if declines_since is None else _utc(declines_since),
            now=None if now is None else _utc(now))
        counts = {o: LaunchCounts(o, n, raw.held.get((o, RESERVED), 0),
                                  raw.held.get((o, CONFIRMED), 0))
                  for o, n in raw.supply.items()}
        return DecisionState(raw.inventory_version, counts, raw.contacts, raw.declines)

    def all_launch_counts(self, *, now: datetime) -> dict[str, LaunchCounts]:
        """Counts of every launch that has had a reservation, by offer id."""
        with self._read("list launches") as conn:
            offer_ids = conn.execute(select(launches.c.offer_id)
                                     .order_by(launches.c.offer_id)).scalars().all()
        found = self.decision_state(launch_ids=offer_ids, now=now).launches
        return {offer_id: found[offer_id] for offer_id in offer_ids if offer_id in found}

    def reservations(self, offer_id: str) -> list[Reservation]:
        """Every reservation of a launch, oldest first, whatever its status."""
        with self._read("read reservations") as conn:
            rows = conn.execute(select(reservations)
                                .where(reservations.c.offer_id == offer_id)
                                .order_by(reservations.c.created_at,
                                          reservations.c.reservation_id)).all()
        return [_reservation(row) for row in rows]

    def _upsert_launch(self, conn: Connection, offer_id: str, supply: int,
                       now: datetime) -> None:
        # The conflict update also locks the launch row on PostgreSQL until commit: every
        # reservation of this launch queues behind it.
        stmt = self._insert(launches).values(offer_id=offer_id, supply=supply, held=0,
                                             updated_at=now)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[launches.c.offer_id],
            set_={"supply": stmt.excluded.supply, "updated_at": stmt.excluded.updated_at}))

    def _lock_launch(self, conn: Connection, offer_id: str) -> bool:
        """Lock a launch row for this transaction (SQLite already holds the write lock)."""
        found = conn.execute(select(launches.c.offer_id).where(launches.c.offer_id == offer_id)
                             .with_for_update()).first()
        return found is not None

    def _expire_launch(self, conn: Connection, offer_id: str, now: datetime) -> int:
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

    def _find(self, conn: Connection, *, decision_id: str, offer_id: str) -> Row[Any] | None:
        """The reservation a decision made for a launch, a live one first if there are several."""
        live_first = case((reservations.c.status.in_(ACTIVE), 0), else_=1)
        return conn.execute(
            select(reservations)
            .where(reservations.c.decision_id == decision_id,
                   reservations.c.offer_id == offer_id)
            .order_by(live_first, reservations.c.created_at.desc())
            .limit(1)
        ).first()

    def _finish(self, conn: Connection, row: Row[Any], status: str, now: datetime) -> None:
        """End a live hold (released or expired) and give its unit back."""
        conn.execute(update(reservations)
                     .where(reservations.c.reservation_id == row.reservation_id)
                     .values(status=status, updated_at=now))
        conn.execute(update(launches).where(launches.c.offer_id == row.offer_id)
                     .values(held=launches.c.held - 1, updated_at=now))

    # ------------------------------------------------------------ contact policy

    def record_contacts(self, *, customer_id: str, channel: str, offer_ids: Sequence[str],
                        now: datetime) -> None:
        """Record that `offer_ids` were shown to a customer on a channel (one row per offer)."""
        now = _utc(now)
        if not offer_ids:
            return
        with self._write("record contacts") as conn:
            conn.execute(insert(contacts), [
                {"customer_id": customer_id, "channel": channel, "offer_id": offer_id,
                 "contacted_at": now} for offer_id in offer_ids])

    def contacts_since(self, *, customer_id: str, channel: str, since: datetime) -> int:
        """Offers shown to a customer on a channel at or after `since`."""
        return self.decision_state(customer_id=customer_id, channel=channel,
                                   contacts_since=since).contacts

    def record_decline(self, *, customer_id: str, offer_id: str, now: datetime) -> None:
        """Record that a customer declined an offer."""
        now = _utc(now)
        with self._write("record decline") as conn:
            conn.execute(insert(declines).values(customer_id=customer_id, offer_id=offer_id,
                                                 declined_at=now))

    def declines_since(self, *, customer_id: str, since: datetime) -> dict[str, int]:
        """Declines per offer of a customer at or after `since`."""
        return self.decision_state(customer_id=customer_id, declines_since=since).declines

    @property
    def log(self) -> DecisionLog:
        """The decision and outcome log kept in this store."""
        from state.log import DecisionLog

        return DecisionLog(self)

    # ------------------------------------------------------------ transactions

    def _insert(self, table: Table) -> Any:
        """An INSERT with this dialect's ON CONFLICT support."""
        return (postgresql.insert if self.backend == "postgresql" else sqlite.insert)(table)

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """One write transaction; database failures become StateStoreError."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StateStoreError(self.url, f"{what} failed: {_describe(exc)}") from exc

    @contextmanager
    def _read(self, what: str, *, consistent: bool = False) -> Iterator[Connection]:
        """One read transaction; `consistent` gives every statement the same snapshot.

        SQLite read transactions always see one snapshot; PostgreSQL needs REPEATABLE READ for
        that (a read-only transaction there never fails to serialize).
        """
        options: dict[str, Any] = {_READ_ONLY: True}
        if consistent and self.backend == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**options)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            raise StateStoreError(self.url, f"{what} failed: {_describe(exc)}") from exc


# ---------------------------------------------------------------- opening


def open_store(url: str = DEFAULT_URL, *, timeouts: Timeouts | None = None) -> StateStore:
    """Open (and create if needed) the state store at `url`.

    `timeouts` (the service's): PostgreSQL statement and lock time-outs and a client that stops
    waiting at the thread's deadline (state.budget); SQLite lock waits bounded by the budget.
    Without them (the CLI) statements may run as long as they need.

    `url` is sqlite:///path/state.db (one host, shared by the workers through a WAL file) or
    postgresql://user@host:port/db (several hosts); query parameters are passed to the driver,
    e.g. ?options=-csearch_path%3Dmy_schema. Raises StateStoreError naming the URL (password
    masked) when it is malformed or the database cannot be reached or set up.
    """
    masked = mask_url(url)
    parsed, backend = _parse(url, masked)
    try:
        engine = _create_engine(parsed, backend, timeouts)
    except (NoSuchModuleError, ImportError) as exc:
        raise StateStoreError(masked, f"database driver not available ({exc})") from None
    try:
        _create_schema(engine, backend)
    except DBAPIError as exc:
        engine.dispose()
        raise StateStoreError(masked, f"cannot open: {_describe(exc)}") from exc
    logger.info("state store %s opened (%s)", masked, backend)
    return StateStore(engine, url=masked, backend=backend)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log and show."""
    url = re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


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
        event.listen(engine, "do_connect",
                     lambda dialect, record, cargs, cparams: _timed_connect(cargs, cparams,
                                                                            timeouts))
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


def _create_schema(engine: Engine, backend: str) -> None:
    insert_ = postgresql.insert if backend == "postgresql" else sqlite.insert
    with engine.begin() as conn:
        if backend == "postgresql":
            # concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn)
        conn.execute(insert_(inventory_meta).values(id=1, version=0)
                     .on_conflict_do_nothing(index_elements=[inventory_meta.c.id]))


# ---------------------------------------------------------------- helpers


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _version(conn: Connection) -> int:
    version = conn.execute(select(inventory_meta.c.version)
                           .where(inventory_meta.c.id == 1)).scalar()
    return int(version or 0)


def _inventory_values(rows: Iterable[StockRow], now: datetime) -> list[dict[str, Any]]:
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


def _reservation(row: Row[Any]) -> Reservation:
    return Reservation(row.reservation_id, row.offer_id, row.customer_id, row.decision_id,
                       row.status, row.expires_at, created=False)


def _describe(exc: DBAPIError) -> str:
    """The driver's message on one line, without SQLAlchemy's statement dump."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc.orig).__name__
