"""POST /v1/events: purchases, returns, consent changes and sign-ups update stored profiles.

Each event is applied once (idempotent per event id) to the customer's profile in the state
store by the pure rules of `features.events`, in the same transaction as its record, so the
very next decision (which reads the profile with its live state) sees it: a withdrawn consent
stops offers at once. Events only matter when decisions read stored profiles
(NBA_CUSTOMERS_FROM=store); otherwise the route refuses them rather than drop them silently.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from features.events import SIGN_UP_COLUMNS, apply_event
from service.auth import require
from service.domain import DomainError
from service.schemas import CustomerEventIn, EventBatch, InvalidRequest
from state.profiles import APPLIED, ProfileEvent

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)

#: an event this far ahead of the server's clock is a client bug, not the future
MAX_CLOCK_SKEW = timedelta(hours=1)


class EventsNotServed(DomainError):
    """Events sent to a service that reads customers from a file, where they would be lost."""


class CardTaken(DomainError):
    """A loyalty card registered on the staff page that a stored customer already has as id."""


def to_profile_event(event: CustomerEventIn) -> ProfileEvent:
    """The stored form of a validated event: its fields, nulls left out."""
    payload = event.model_dump(mode="json", exclude_none=True,
                               exclude={"event_id", "customer_id", "type", "occurred_at"})
    return ProfileEvent(event.event_id, event.customer_id, event.type, event.occurred_at,
                        payload)


def update(profile: dict[str, Any] | None, event: ProfileEvent) -> dict[str, Any]:
    """`features.events.apply_event` for a stored event (the store's update rule)."""
    payload = event.payload
    return apply_event(profile, event.type, event.occurred_at,
                       amount=float(payload.get("amount") or 0.0),
                       contactable=payload.get("contactable"),
                       attributes={k: payload[k] for k in SIGN_UP_COLUMNS if k in payload})


@bp.post("/v1/events")
@require("storefront")
def post_events() -> ResponseReturnValue:
    """Apply customer events to their stored profiles; the next decision sees them."""
    from service.api import parse_json  # here: service.errors imports this module first

    batch = parse_json(EventBatch, "event batch")
    if not current_app.extensions["nba.model_store"].current().from_store:
        raise EventsNotServed(
            "this service reads customers from customers.parquet; events update stored "
            "profiles: load them with `nba customers load` and serve with "
            "NBA_CUSTOMERS_FROM=store (or auto)", {"customers_from": "file"})
    now = datetime.now(UTC)
    late = [i for i, e in enumerate(batch.events) if e.occurred_at > now + MAX_CLOCK_SKEW]
    if late:
        raise InvalidRequest(
            f"events.{late[0]}.occurred_at: more than an hour ahead of the server's clock",
            [{"field": f"events.{i}.occurred_at", "problem": "in the future"} for i in late])
    store = current_app.extensions["nba.state"].get().store
    statuses = store.profiles.apply([to_profile_event(e) for e in batch.events], update,
                                    now=now)
    applied = statuses.count(APPLIED)
    log.info("events: %d applied, %d duplicates", applied, len(statuses) - applied)
    return jsonify({"applied": applied, "duplicates": len(statuses) - applied,
                    "results": [{"event_id": e.event_id, "status": s}
                                for e, s in zip(batch.events, statuses, strict=True)]})
