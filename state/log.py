"""The decision and outcome log: what was decided for whom, and what the customer did.

Every decision is appended before its response is sent, so a decision a client received is in
the log even if the worker dies right after. Outcomes are keyed by (decision, offer, event): the
same event reported twice counts once. The log is what incrementality reports read and what
`nba export-training` turns back into training data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from state.database import Database
from state.hotpath import CappedWrite
from state.schema import decisions, outcomes

if TYPE_CHECKING:
    import pandas as pd

EVENTS = ("shown", "accepted", "declined", "purchased")
NO_OFFER = ""  # outcomes.offer_id of an event not tied to an offer (e.g. an organic purchase)


#: the `segment` of a decision made for a customer without a profile (service.newcomers): not
#: an exposure of the modelled catalog, so `nba export-training` leaves it out
NEW_CUSTOMER_SEGMENT = "new_customer"

@dataclass(frozen=True)
class Candidate:
    """An offer the customer was eligible for, with the model's estimate."""

    offer_id: str
    value: float  # expected incremental profit
    uplift: float


@dataclass(frozen=True)
class DecisionRecord:
    """One logged decision, as served (or, for a holdout, as it would have been)."""

    decision_id: str
    decided_at: datetime
    customer_id: str
    channel: str
    model_version: str
    offer_ids: tuple[str, ...]  # served, in rank order (empty for a holdout)
    holdout: bool = False
    explored: bool = False
    chosen_offer: str | None = None
    propensity: float = 1.0
    candidates: tuple[Candidate, ...] = ()
    suppressed: dict[str, str] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    segment: str | None = None


@dataclass(frozen=True)
class CapWrite:
    """A decision to log under a contact cap: whose, on which channel, the window's start,
    and how to build the record once the contacts already made are counted."""

    customer_id: str
    channel: str
    since: datetime
    build: Callable[[int], DecisionRecord]


@dataclass(frozen=True)
class Outcome:
    """What a customer did after a decision: `offer_id` None when not tied to an offer."""

    decision_id: str
    offer_id: str | None
    event: str
    revenue: float
    occurred_at: datetime


class DecisionLog:
    """Append and read decisions and outcomes in the state database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, record: DecisionRecord, *, count_contacts: bool = False) -> None:
        """Append one decision (committed when this returns).

        With `count_contacts`, the offers it served are counted for the contact caps in the
        same transaction: a decision is logged and counted, or neither.
        """
        self.record_many([record], count_contacts=count_contacts)

    def record_many(self, records: Iterable[DecisionRecord], *,
                    count_contacts: bool = False) -> int:
        """Append decisions (and their contacts) in one transaction."""
        records = list(records)
        if not records:
            return 0
        touched = [{"customer_id": r.customer_id, "channel": r.channel, "offer_id": offer_id,
                    "contacted_at": r.decided_at}
                   for r in records if count_contacts for offer_id in r.offer_ids]
        self._db.record_decisions([_row(r) for r in records], touched)
        return len(records)

    def record_capped(self, writes: Sequence[CapWrite]) -> list[DecisionRecord]:
        """Log decisions whose offers count against a contact cap, checked as they are written.

        For each write, the customer's contacts on its channel since `since` are counted and
        `build(counted)` returns the record to log (the decision cut to what the cap still
        allows); it is written, with its offers as contacts, in the same transaction and under
        the customer's lock, so concurrent decisions on other workers or hosts cannot both
        pass the cap. Returns the records logged, in order.
        """
        def row(build: Callable[[int], DecisionRecord]) -> Callable[[int], Any]:
            def built(counted: int) -> tuple[dict[str, Any], list[dict[str, Any]],
                                             DecisionRecord]:
                record = build(counted)
                return _row(record), [
                    {"customer_id": record.customer_id, "channel": record.channel,
                     "offer_id": offer_id, "contacted_at": record.decided_at}
                    for offer_id in record.offer_ids], record
            return built

        return self._db.record_capped([CappedWrite(w.customer_id, w.channel, w.since,
                                                   row(w.build)) for w in writes])

    def get(self, decision_id: str) -> DecisionRecord | None:
        """A logged decision, or None."""
        with self._db.read("read decision") as conn:
            row = conn.execute(select(decisions).where(
                decisions.c.decision_id == decision_id)).first()
        return None if row is None else _record(row)

    def record_outcome(self, outcome: Outcome) -> bool:
        """Record an event; False when the same (decision, offer, event) was already recorded."""
        if outcome.event not in EVENTS:
            raise ValueError(f"unknown event {outcome.event!r}; use one of {list(EVENTS)}")
        values = {"decision_id": outcome.decision_id,
                  "offer_id": outcome.offer_id or NO_OFFER, "event": outcome.event,
                  "revenue": float(outcome.revenue), "occurred_at": outcome.occurred_at}
        with self._db.write("record outcome") as conn:
            inserted = conn.execute(self._db.insert(outcomes).values(values)
                                    .on_conflict_do_nothing())
            return inserted.rowcount == 1

    def decisions_frame(self, since: datetime | None = None) -> pd.DataFrame:
        """Every decision (since a time) as a frame; JSON columns decoded to Python objects."""
        import pandas as pd  # only reports and exports need frames: `import state` stays light

        query = select(decisions).order_by(decisions.c.decided_at, decisions.c.decision_id)
        if since is not None:
            query = query.where(decisions.c.decided_at >= since)
        with self._db.read("read decisions") as conn:
            rows = conn.execute(query).mappings().all()
        frame = pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in decisions.c])
        for column in ("offer_ids", "candidates", "suppressed", "features"):
            frame[column] = [json.loads(v) for v in frame[column]]
        return frame

    def outcomes_frame(self, since: datetime | None = None) -> pd.DataFrame:
        """Every outcome of decisions made since a time; offer_id None when not tied to one."""
        import pandas as pd

        query = select(outcomes).join(decisions).order_by(outcomes.c.occurred_at)
        if since is not None:
            query = query.where(decisions.c.decided_at >= since)
        with self._db.read("read outcomes") as conn:
            rows = conn.execute(query).mappings().all()
        frame = pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in outcomes.c])
        frame["offer_id"] = frame["offer_id"].replace(NO_OFFER, None)
        return frame


def _row(record: DecisionRecord) -> dict[str, Any]:
    return {
        "decision_id": record.decision_id, "decided_at": record.decided_at,
        "customer_id": record.customer_id, "channel": record.channel,
        "model_version": record.model_version, "holdout": record.holdout,
        "explored": record.explored, "chosen_offer": record.chosen_offer,
        "propensity": float(record.propensity),
        "offer_ids": json.dumps(list(record.offer_ids)),
        "candidates": json.dumps([[c.offer_id, c.value, c.uplift] for c in record.candidates]),
        "suppressed": json.dumps(record.suppressed),
        "features": json.dumps(record.features, default=_plain),
        "segment": record.segment,
    }


def _record(row: Any) -> DecisionRecord:
    return DecisionRecord(
        decision_id=row.decision_id, decided_at=row.decided_at, customer_id=row.customer_id,
        channel=row.channel, model_version=row.model_version,
        offer_ids=tuple(json.loads(row.offer_ids)), holdout=row.holdout,
        explored=row.explored, chosen_offer=row.chosen_offer, propensity=row.propensity,
        candidates=tuple(Candidate(*c) for c in json.loads(row.candidates)),
        suppressed=json.loads(row.suppressed), features=json.loads(row.features),
        segment=row.segment)


def record_json(record: DecisionRecord) -> str:
    """A record as one JSON text (a Spark campaign's tasks hand their log records to the
    driver this way, through a parquet column): `record_of_json` reads it back."""
    row = _row(record)
    row["decided_at"] = record.decided_at.isoformat()
    return json.dumps(row)


def record_of_json(text: str) -> DecisionRecord:
    """The record `record_json` wrote."""
    row = json.loads(text)
    row["decided_at"] = datetime.fromisoformat(row["decided_at"])
    return _record(SimpleNamespace(**row))


def _plain(value: Any) -> Any:
    """JSON for NumPy scalars and timestamps in a feature row."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):  # pandas' Timestamp is one too
        return value.isoformat()
    return str(value)


def offers_of(records: Sequence[DecisionRecord]) -> list[str]:
    """Distinct served offers across records, in first-seen order (reports' row order)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update((offer_id, None) for offer_id in record.offer_ids)
    return list(seen)
