"""The statements every served decision runs, on one DBAPI connection held per thread.

Through SQLAlchemy Core each statement cost 150-250 µs (pool checkout, BEGIN, cache-key
lookup, result wrapping), and a decision ran five reads and two inserts: 1.7 ms of a 2.4 ms
decision. Here the reads are ONE statement (a UNION ALL, so one snapshot on both backends
without a transaction) and the inserts one short transaction, on a connection this module
holds for the thread. The rest of the store stays on SQLAlchemy Core.

Values are bound through the columns' own SQLAlchemy types, so what is written here reads back
exactly like what Core writes (UTC timestamps, SQLite's text dates).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Column, Engine, Table
from sqlalchemy.exc import DBAPIError

from state.errors import StateStoreError, describe
from state.schema import CONFIRMED, RESERVED, contacts, decisions

#: Connections a forked child inherited: kept referenced, never used or closed, because closing
#: one would end the parent's session on the shared socket.
_INHERITED: list[Any] = []

T = TypeVar("T")


class _Held:
    """One thread's DBAPI connection, and the process that opened it.

    Kept in a threading.local: when its thread ends, the holder goes and closes the connection
    (a connection another process opened is the parent's: it is only dropped).
    """

    __slots__ = ("pid", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.pid = os.getpid()

    def take(self) -> Any:
        """The connection, no longer closed by this holder (None if already taken)."""
        raw, self.raw = self.raw, None
        return raw

    def __del__(self) -> None:
        try:
            if self.raw is not None and self.pid == os.getpid():
                _close_quietly(self.raw)
        except Exception:  # at interpreter exit module globals may be gone: nothing to close
            pass


@dataclass(frozen=True)
class CappedWrite:
    """One decision to write under its customer's contact cap: `build(counted)` gets the
    contacts counted in the window and returns (decision row, contact rows, anything)."""

    customer_id: str
    channel: str
    since: datetime
    build: Callable[[int], tuple[dict[str, Any], list[dict[str, Any]], Any]]


def contact_lock_key(customer_id: str, channel: str) -> int:
    """The PostgreSQL advisory-lock key of a customer's contacts on a channel (signed 64 bit,
    the same in every process: not Python's salted hash)."""
    digest = hashlib.blake2b(f"contacts\x00{customer_id}\x00{channel}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class RawDecisionState:
    """The hot read's rows, grouped: the store turns them into a DecisionState."""

    inventory_version: int
    supply: dict[str, int]  # launches that have had a reservation
    held: dict[tuple[str, str], int]  # (offer_id, status) -> live holds or sales
    contacts: int
    declines: dict[str, int]
    profile: str | None = None  # the customer's profile document, when asked for and stored


class HotPath:
    """The decision read and the decision-log write, on per-thread held connections."""

    def __init__(self, engine: Engine, *, backend: str, url: str) -> None:
        self._engine = engine
        self._backend = backend
        self._url = url
        self._placeholder = "?" if backend == "sqlite" else "%s"
        self._begin = "BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN"
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()  # .held: this thread's _Held
        self._bind_time = _binder(contacts.c.contacted_at, engine)
        self._decision_insert = _Insert(decisions, engine, self._placeholder)
        self._contact_insert = _Insert(contacts, engine, self._placeholder,
                                       ("customer_id", "channel", "offer_id", "contacted_at"))

    def decision_state(self, *, launch_ids: Sequence[str], customer_id: str, channel: str,
                       contacts_since: datetime | None, declines_since: datetime | None,
                       now: datetime | None, with_profile: bool = False) -> RawDecisionState:
        """Inventory version, launch counts, contacts, declines (and the profile): one statement."""
        sql = _decision_state_sql(len(launch_ids), contacts_since is not None,
                                  declines_since is not None, self._placeholder, with_profile)
        params: list[Any] = []
        if launch_ids:
            params += [*launch_ids, *launch_ids, self._bind_time(now)]
        if contacts_since is not None:
            params += [customer_id, channel, self._bind_time(contacts_since)]
        if declines_since is not None:
            params += [customer_id, self._bind_time(declines_since)]
        if with_profile:
            params.append(customer_id)
        rows = self._run("read decision state",
                         lambda cursor: _fetch_all(cursor, sql, params), transaction=False)
        version, supply, held, declined, contacted = 0, {}, {}, {}, 0
        profile: str | None = None
        for kind, key, status, n in rows:
            if kind == "p":
                profile = status
            elif kind == "v":
                version = int(n or 0)
            elif kind == "s":
                supply[key] = int(n)
            elif kind == "h":
                held[key, status] = int(n)
            elif kind == "c":
                contacted = int(n)
            else:
                declined[key] = int(n)
        return RawDecisionState(version, supply, held, contacted, declined, profile)

    def record_decisions(self, rows: Sequence[dict[str, Any]],
                         contact_rows: Sequence[dict[str, Any]]) -> None:
        """Insert decision-log rows and their contact rows in one committed transaction."""
        def insert(cursor: Any) -> None:
            self._decision_insert.run(cursor, rows)
            if contact_rows:
                self._contact_insert.run(cursor, contact_rows)

        self._run("record decisions", insert, transaction=True)

    def record_capped(self, items: Sequence[CappedWrite]) -> list[Any]:
        """Count each customer's contacts and write their decision in ONE transaction.

        Per item: the customer's contacts on the channel since `since` are counted under a
        lock that every other capped write for that customer waits on (PostgreSQL: an advisory
        transaction lock per customer and channel; SQLite: BEGIN IMMEDIATE, one writer at a
        time), then `build(counted)` returns the decision row and its contact rows, written
        before the lock is let go. So two hosts can never both let a customer past the cap.
        Returns what each `build` returned as its third element, in order.
        """
        count_sql = (f"SELECT count(*) FROM contacts WHERE customer_id = {self._placeholder} "
                     f"AND channel = {self._placeholder} AND contacted_at >= "
                     f"{self._placeholder}")
        # one lock order for every writer: two batches never wait on each other in a cycle
        order = sorted(range(len(items)), key=lambda i: contact_lock_key(
            items[i].customer_id, items[i].channel))

        def work(cursor: Any) -> list[Any]:
            built: list[Any] = [None] * len(items)
            if self._backend == "postgresql":
                for key in sorted({contact_lock_key(i.customer_id, i.channel) for i in items}):
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            for i in order:
                item = items[i]
                cursor.execute(count_sql, [item.customer_id, item.channel,
                                           self._bind_time(item.since)])
                counted = int(cursor.fetchone()[0])
                row, contact_rows, result = item.build(counted)
                self._decision_insert.run(cursor, [row])
                if contact_rows:
                    self._contact_insert.run(cursor, contact_rows)
                built[i] = result
            return built

        return self._run("record decisions", work, transaction=True)

    def forget(self) -> None:
        """Drop this thread's connection without closing it (a forked child's inheritance)."""
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            raw = held.take()
            if raw is not None:
                _INHERITED.append(raw)

    def close(self) -> None:
        """Close this thread's connection (other threads' close when their thread ends)."""
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            own = held.pid == os.getpid()
            raw = held.take()
            if raw is not None and own:
                _close_quietly(raw)
            elif raw is not None:
                _INHERITED.append(raw)

    def _run(self, what: str, work: Callable[[Any], T], *, transaction: bool) -> T:
        """`work(cursor)` on this thread's connection; database errors become StateStoreError.

        A PostgreSQL connection found dead (a server restart) is replaced and the work run once
        more, as SQLAlchemy's pool pre-ping would: a read always, a write only when it failed
        at BEGIN, before anything was sent.
        """
        for attempt in (1, 2):
            raw = self.connection_for_thread()
            began = not transaction
            cursor = None
            try:
                cursor = raw.cursor()
                if transaction:
                    cursor.execute(self._begin)
                    began = True
                result = work(cursor)
                if transaction:
                    cursor.execute("COMMIT")
                return result
            except self._dbapi_error as exc:
                broken = self._abandon(raw, cursor, transaction and began)
                if broken and attempt == 1 and (not transaction or not began):
                    continue
                raise StateStoreError(self._url, f"{what} failed: {describe(exc)}") from exc
            except BaseException:
                self._abandon(raw, cursor, transaction and began)
                raise
            finally:
                if cursor is not None:
                    _close_quietly(cursor)
        raise AssertionError("unreachable")

    def connection_for_thread(self) -> Any:
        """This thread's DBAPI connection, opened on first use (and anew in a forked child)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.raw is not None and held.pid == os.getpid():
            return held.raw
        if held is not None:  # a forked child: the parent's connection is not ours to touch
            self.forget()
        try:
            proxy = self._engine.raw_connection()
        except (self._dbapi_error, DBAPIError) as exc:
            raise StateStoreError(self._url, f"cannot connect: {describe(exc)}") from exc
        proxy.detach()  # ours for the thread's life, outside the pool's checkout accounting
        raw = proxy.dbapi_connection
        assert raw is not None  # a fresh checkout always carries its DBAPI connection
        if self._backend == "postgresql":
            try:
                raw.rollback()  # a pre-ping may have left a transaction open
                raw.autocommit = True  # the read is one statement; writes say BEGIN themselves
            except self._dbapi_error as exc:  # e.g. the request's time ran out (state.budget)
                _close_quietly(raw)
                raise StateStoreError(self._url, f"cannot connect: {describe(exc)}") from exc
        self._local.held = _Held(raw)
        return raw

    def _abandon(self, raw: Any, cursor: Any, in_transaction: bool) -> bool:
        """Roll back what failed; drop the connection if it is dead. True when it was dead."""
        broken = bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))
        if not broken and in_transaction and cursor is not None:
            try:
                cursor.execute("ROLLBACK")
            except self._dbapi_error:
                broken = True
        if broken:
            held: _Held | None = getattr(self._local, "held", None)
            if held is not None and held.raw is raw:
                held.take()
            _close_quietly(raw)
        return broken


class _Insert:
    """A prepared INSERT of some of a table's columns, binding values through their types."""

    def __init__(self, table: Table, engine: Engine, placeholder: str,
                 names: Sequence[str] | None = None) -> None:
        columns = [table.c[name] for name in names] if names else list(table.c)
        self._names = [c.name for c in columns]
        self._binders = [_binder(c, engine) for c in columns]
        self._sql = (f"INSERT INTO {table.name} ({', '.join(self._names)}) "
                     f"VALUES ({', '.join([placeholder] * len(columns))})")

    def run(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        values = [[bind(row.get(name)) for name, bind in zip(self._names, self._binders,
                                                             strict=True)] for row in rows]
        if len(values) == 1:
            cursor.execute(self._sql, values[0])
        else:
            cursor.executemany(self._sql, values)


def _binder(column: Column[Any], engine: Engine) -> Callable[[Any], Any]:
    """The column type's own Python -> DBAPI conversion for this dialect (identity if none)."""
    dialect = engine.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _identity


def _identity(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=64)
def _decision_state_sql(n_launches: int, with_contacts: bool, with_declines: bool,
                        placeholder: str, with_profile: bool = False) -> str:
    """The hot read as one UNION ALL of (kind, key, status, n) rows: one snapshot, one trip.

    v: inventory version; s: launch supply; h: live holds/sales per launch and status;
    c: the customer's contacts on the channel since; d: declines per offer since;
    p: the customer's profile document (in `status`; no row when there is no profile).
    """
    p = placeholder
    parts = ["SELECT 'v' AS kind, '' AS key, '' AS status, version AS n "
             "FROM inventory_meta WHERE id = 1"]
    if n_launches:
        ids = ", ".join([p] * n_launches)
        parts += [
            f"SELECT 's', offer_id, '', supply FROM launches WHERE offer_id IN ({ids})",
            f"SELECT 'h', offer_id, status, count(*) FROM reservations "
            f"WHERE offer_id IN ({ids}) AND (status = '{CONFIRMED}' "
            f"OR (status = '{RESERVED}' AND expires_at > {p})) GROUP BY offer_id, status",
        ]
    if with_contacts:
        parts.append(f"SELECT 'c', '', '', count(*) FROM contacts "
                     f"WHERE customer_id = {p} AND channel = {p} AND contacted_at >= {p}")
    if with_declines:
        parts.append(f"SELECT 'd', offer_id, '', count(*) FROM declines "
                     f"WHERE customer_id = {p} AND declined_at >= {p} GROUP BY offer_id")
    if with_profile:
        parts.append(f"SELECT 'p', customer_id, data, 0 FROM profiles WHERE customer_id = {p}")
    return "\nUNION ALL ".join(parts)


def _fetch_all(cursor: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _close_quietly(raw: Any) -> None:
    # a dead connection may fail to close; it is gone either way
    with contextlib.suppress(Exception):
        raw.close()

