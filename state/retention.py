"""Retention: history older than a cut-off is deleted in small batches, so tables stay bounded.

Every served decision adds a decision-log row and contact rows, and every decline a row; they
are needed only as long as the reports and the contact caps look back. `prune` removes them (a
decision's outcomes with it), along with launch holds that ended (released or expired).
Confirmed holds are sales: they stay, because a launch's sold units are counted from them.
Each batch is its own short write transaction, so serving never waits long behind a prune.

History the contact caps still count is never pruned: `check_cutoff` refuses such a cut-off.

On PostgreSQL, where decisions and contacts are partitioned by month (state.partitions), a
partition wholly older than the cut-off is dropped (its decisions' outcomes deleted first, in
batches): pruning a month costs a catalog change instead of millions of row deletes. Rows older
than the cut-off in the month it falls in are deleted in batches as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Table, delete, func, select, text

from state import partitions
from state.database import Database
from state.schema import EXPIRED, RELEASED, contacts, decisions, declines, outcomes, reservations

if TYPE_CHECKING:
    from state.store import StateStore

BATCH = 2_000


class CutoffTooRecent(ValueError):
    """A cut-off inside the contact-cap windows: pruning would lift caps customers are under."""

    def __init__(self, older_than_days: float, needed_days: float) -> None:
        self.older_than_days = older_than_days
        self.needed_days = needed_days
        super().__init__(f"a cut-off of {older_than_days:g} days would delete history the "
                         f"contact caps still count ({needed_days:g} days); use at least "
                         f"{needed_days:g}")


def kept_days(*, cap_window_hours: float, decline_days: float) -> float:
    """Days of history the contact caps look back over: the shortest allowed cut-off."""
    return max(cap_window_hours / 24, decline_days)


def check_cutoff(older_than_days: float, *, cap_window_hours: float,
                 decline_days: float) -> None:
    """Refuse (CutoffTooRecent) a cut-off younger than the contact caps' look-back."""
    needed = kept_days(cap_window_hours=cap_window_hours, decline_days=decline_days)
    if older_than_days < needed:
        raise CutoffTooRecent(older_than_days, needed)


@dataclass(frozen=True)
class Pruned:
    """Rows deleted (or, for a dry run, that would be) per table."""

    decisions: int = 0
    outcomes: int = 0
    contacts: int = 0
    declines: int = 0
    reservations: int = 0
    #: partitions dropped whole (PostgreSQL); their rows are counted above too
    partitions: tuple[str, ...] = field(default=(), compare=False)

    def items(self) -> list[tuple[str, int]]:
        """(table, rows) in the order they are pruned."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if f.name != "partitions"]


def prune(store: StateStore, *, before: datetime, dry_run: bool = False, batch: int = BATCH,
          progress: Callable[[str, int], None] | None = None) -> Pruned:
    """Delete history older than `before` (timezone-aware); with `dry_run`, only count it."""
    if before.tzinfo is None:
        raise ValueError("`before` must be timezone-aware (UTC)")
    db = store.db
    if dry_run:
        return _count(db, before)
    old_decisions = _old_partitions(db, "decisions", before)
    old_contacts = _old_partitions(db, "contacts", before)
    decided = contacted = answered = 0
    for partition in old_decisions:
        answered += _prune_outcomes_of(db, partition, batch, progress)
        decided += _drop(db, partition, progress)
    for partition in old_contacts:
        contacted += _drop(db, partition, progress)
    more_decided, more_answered = _prune_decisions(db, before, batch, progress)
    return Pruned(
        decisions=decided + more_decided, outcomes=answered + more_answered,
        contacts=contacted + _prune_rows(db, contacts, contacts.c.id,
                                         contacts.c.contacted_at < before, batch, progress),
        declines=_prune_rows(db, declines, declines.c.id, declines.c.declined_at < before,
                             batch, progress),
        reservations=_prune_rows(db, reservations, reservations.c.reservation_id,
                                 _ended_holds(before), batch, progress),
        partitions=tuple(p.name for p in (*old_decisions, *old_contacts)),
    )


def _old_partitions(db: Database, table: str, before: datetime) -> list[partitions.Partition]:
    """The partitions of `table` holding nothing at or after `before` (none if unpartitioned)."""
    if table not in db.partitions.tables:
        return []
    with db.read(f"list {table} partitions") as conn:
        return [p for p in partitions.listing(conn, table) if p.upper <= before]


def _drop(db: Database, partition: partitions.Partition,
          progress: Callable[[str, int], None] | None) -> int:
    """Drop one partition; how many rows went with it."""
    with db.write(f"drop partition {partition.name}") as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": partitions.LOCK})
        rows = int(conn.execute(text(f"SELECT count(*) FROM {partition.name}")).scalar_one())
        partitions.drop(conn, partition)
    db.partitions.forget(partition)
    if progress:
        progress(partition.table, rows)
    return rows


def _prune_outcomes_of(db: Database, partition: partitions.Partition, batch: int,
                       progress: Callable[[str, int], None] | None) -> int:
    """Delete the outcomes of a decision partition's decisions, a batch of decisions at a time
    (walking the partition's key in order, so each batch is an index range)."""
    deleted, after = 0, ""
    while True:
        with db.write("prune outcomes") as conn:
            ids = conn.execute(text(
                f"SELECT decision_id FROM {partition.name} WHERE decision_id > :after "
                f"ORDER BY decision_id LIMIT :n"), {"after": after, "n": batch}).scalars().all()
            if not ids:
                return deleted
            after = ids[-1]
            deleted += conn.execute(delete(outcomes)
                                    .where(outcomes.c.decision_id.in_(ids))).rowcount
        if progress and deleted:
            progress("outcomes", deleted)


def _count(db: Database, before: datetime) -> Pruned:
    old = decisions.c.decided_at < before
    dropped = tuple(p.name for table in ("decisions", "contacts")
                    for p in _old_partitions(db, table, before))
    with db.read("count prunable history") as conn:
        def count(table: Table, where: Any) -> int:
            return conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()

        return Pruned(
            decisions=count(decisions, old),
            outcomes=count(outcomes, outcomes.c.decision_id.in_(
                select(decisions.c.decision_id).where(old))),
            contacts=count(contacts, contacts.c.contacted_at < before),
            declines=count(declines, declines.c.declined_at < before),
            reservations=count(reservations, _ended_holds(before)),
            partitions=dropped,
        )


def _ended_holds(before: datetime) -> Any:
    return reservations.c.status.in_((RELEASED, EXPIRED)) & (reservations.c.updated_at < before)


def _prune_decisions(db: Database, before: datetime, batch: int,
                     progress: Callable[[str, int], None] | None) -> tuple[int, int]:
    """Old decisions and their outcomes, a batch of decisions per transaction."""
    decided = answered = 0
    old = decisions.c.decided_at < before  # lets PostgreSQL skip the partitions after the cut
    while True:
        with db.write("prune decisions") as conn:
            ids = conn.execute(select(decisions.c.decision_id)
                               .where(old).limit(batch)
                               ).scalars().all()
            if not ids:
                return decided, answered
            answered += conn.execute(delete(outcomes)
                                     .where(outcomes.c.decision_id.in_(ids))).rowcount
            decided += conn.execute(delete(decisions)
                                    .where(decisions.c.decision_id.in_(ids), old)).rowcount
        if progress:
            progress("decisions", decided)


def _prune_rows(db: Database, table: Table, key: Column[Any], where: Any, batch: int,
                progress: Callable[[str, int], None] | None) -> int:
    """Rows of `table` matching `where`, a batch per transaction; how many were deleted."""
    deleted = 0
    while True:
        with db.write(f"prune {table.name}") as conn:
            keys = conn.execute(select(key).where(where).limit(batch)).scalars().all()
            if not keys:
                return deleted
            deleted += conn.execute(delete(table).where(key.in_(keys), where)).rowcount
        if progress:
            progress(table.name, deleted)
