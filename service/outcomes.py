"""Outcomes: what a customer did after a decision, recorded once, with its side effects.

One code path for `POST /v1/outcomes` and `nba outcomes load`: check the decision and offer,
record the event idempotently, and only for a first recording confirm or release the launch unit
and count a decline towards the contact cap.
"""

from __future__ import annotations

from datetime import datetime

from service.domain import DomainError
from service.schemas import InvalidRequest, OutcomeRequest
from state import StateStore
from state.log import DecisionRecord, Outcome


class UnknownDecision(DomainError):
    """No such decision in the decision log."""


def check_outcome(store: StateStore, outcome: OutcomeRequest) -> DecisionRecord:
    """The logged decision an outcome belongs to.

    Raises UnknownDecision when the log has no such decision, InvalidRequest when the offer
    does not fit it (not shown in it, or missing for an event other than a purchase).
    """
    record = store.log.get(outcome.decision_id)
    if record is None:
        raise UnknownDecision(f"unknown decision_id '{outcome.decision_id}'",
                              {"decision_id": outcome.decision_id})
    offer_id = outcome.offer_id
    if offer_id is None and outcome.event != "purchased":
        raise InvalidRequest(f"event '{outcome.event}' needs an offer_id (only a purchase may "
                             "be reported without one)", {"event": outcome.event})
    if offer_id is not None and offer_id not in record.offer_ids:
        raise InvalidRequest(
            f"offer '{offer_id}' was not shown in decision '{outcome.decision_id}' "
            f"(shown: {', '.join(record.offer_ids) or 'nothing'})",
            {"offer_id": offer_id, "shown": list(record.offer_ids)})
    return record


def record_outcome(store: StateStore, outcome: OutcomeRequest, now: datetime) -> dict:
    """Record one outcome; returns the response document (`recorded` False for a repeat).

    Raises what `check_outcome` raises, before anything is recorded.
    """
    record = check_outcome(store, outcome)
    offer_id = outcome.offer_id
    recorded = store.log.record_outcome(Outcome(outcome.decision_id, offer_id, outcome.event,
                                                outcome.revenue, now))
    hold = None
    if offer_id is not None and outcome.event in ("accepted", "purchased"):
        hold = store.confirm(decision_id=outcome.decision_id, offer_id=offer_id, now=now)
    elif offer_id is not None and outcome.event == "declined":
        hold = store.release(decision_id=outcome.decision_id, offer_id=offer_id, now=now)
        if recorded:
            store.record_decline(customer_id=record.customer_id, offer_id=offer_id, now=now)
    return {"decision_id": outcome.decision_id, "offer_id": offer_id, "event": outcome.event,
            "recorded": recorded,
            "reservation": None if hold is None else {"reservation_id": hold.reservation_id,
                                                      "status": hold.status}}
