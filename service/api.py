"""Thin routes: parse a request schema, call the decision code, serialize a response schema."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from typing import TypeVar

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError

from decisioning.decision import Decision, DecisionContext
from service import limits, observability
from service.auth import require
from service.errors import error_fields
from service.live import Hold, LiveDecision, LiveState, Served, decide_live, log_decisions
from service.model_store import (
    RELOADED,
    UNCHANGED,
    LoadedModel,
    ModelNotReady,
    ModelStore,
    ReloadFailed,
    UnknownCustomer,
)
from service.outcomes import record_outcome
from service.schemas import (
    BatchDecisionRequest,
    DecisionContextIn,
    DecisionRequest,
    InvalidRequest,
    InventoryUpdate,
    OutcomeRequest,
)
from service.settings import ServiceSettings
from state import StateStoreError, StockRow

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)


def _store() -> ModelStore:
    return current_app.extensions["nba.model_store"]


def _settings() -> ServiceSettings:
    return current_app.extensions["nba.settings"]


def parse_json(schema: type[T], what: str) -> T:
    """The request's JSON body validated against `schema`; a 400 naming the problem otherwise."""
    body = _json_body()
    if "context" in schema.model_fields:
        limits.check_context(body.get("context"), _settings())
    return _parse(schema, body, what)


def _json_body() -> dict:
    body = limits.read_json(_settings().max_json_depth)
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {_json_kind(body)}")
    return body


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (the body `null` was "got NoneType")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"


def _parse(schema: type[T], body: dict, what: str) -> T:
    """Validate a body against its schema; a 400 naming every bad field otherwise."""
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
                    for e in exc.errors(include_url=False, include_context=False,
                                        include_input=False)]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:10])
        raise InvalidRequest(f"invalid {what}: {summary}", problems) from None


def _live() -> LiveState:
    return current_app.extensions["nba.state"].get()


def decision_json(decision_id: str, customer_id: str, model: LoadedModel,
                  decision: Decision, holds: list[Hold] | None = None, *,
                  customer_known: bool = True, customer_known_reason: str | None = None
                  ) -> dict:
    """The response document of one decision."""
    held = {hold.offer_id: hold.reservation for hold in holds or ()}

    def reservation(offer_id: str) -> dict | None:
        r = held.get(offer_id)
        return None if r is None else {"reservation_id": r.reservation_id,
                                        "expires_at": r.expires_at.isoformat()}

    return {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "customer_known": customer_known,
        **({"customer_known_reason": customer_known_reason} if not customer_known else {}),
        "model": {"name": model.name, "version": model.version},
        "holdout": decision.holdout,
        "explored": decision.explored,
        "stock_checked": decision.stock_checked,
        "offers": [{
            "offer_id": o.offer_id, "rank": o.rank,
            "expected_incremental_value": round(o.expected_incremental_value, 4),
            "uplift": round(o.uplift, 6),
            "conversion_probability": round(o.conversion_probability, 6),
            "action": o.action,
            "reasons": [{"code": r.code, "message": r.message, "details": dict(r.details)}
                        for r in o.reasons],
            "reservation": reservation(o.offer_id),
        } for o in decision.offers],
        "suppressed": [{"offer_id": s.offer_id, "reason": s.reason, "message": s.message,
                        "details": dict(s.details)} for s in decision.suppressed],
    }


def _decide(model: LoadedModel, live: LiveState, customer_id: str, channel: str, limit: int,
            situation: DecisionContextIn, *, anonymous: bool = False) -> Served:
    """One customer's decision against live state, not logged yet (`log_decisions` does).

    `situation`: the request's context (store, device, page, cart value; model features when
    the model learned them). `anonymous`: `customer_id` is a session id (decided and logged
    as "session:<id>").
    """
    settings = _settings()
    context = DecisionContext(channel=channel, now=current_app.extensions["nba.clock"](),
                              limit=limit, store_id=situation.store_id,
                              device=situation.device, page=situation.page,
                              cart_value=situation.cart_value)
    decision_id = uuid.uuid4().hex
    if anonymous:
        customer_id = f"session:{customer_id}"
    result = decide_live(live, model, customer_id, context, decision_id,
                         settings.decision_settings(), rng=current_app.extensions["nba.rng"],
                         anonymous=anonymous)
    return Served(result, context, decision_id)


def _answer(model: LoadedModel, served: Served, sent: LiveDecision) -> dict:
    """The response document of a logged decision (as the contact cap let it be sent);
    counted in the metrics and logged as sent."""
    decision, customer_id = sent.decision, sent.table.ids[sent.row]
    offers = [o.offer_id for o in decision.offers]
    observability.record_decision(offers, [s.reason for s in decision.suppressed])
    log.info("decision %s customer=%s model=%s@%s offers=%s holdout=%s explored=%s holds=%s",
             served.decision_id, customer_id, model.name, model.version, offers,
             decision.holdout, decision.explored, [h.offer_id for h in sent.holds],
             extra={"model_version": model.version, "decision_id": served.decision_id,
                    "customer_id": customer_id})
    return decision_json(served.decision_id, customer_id, model, sent.decision, sent.holds,
                         customer_known=sent.customer_known,
                         customer_known_reason=sent.customer_known_reason)


@bp.post("/v1/decisions")
@require("storefront")
def create_decision() -> ResponseReturnValue:
    """Next-best offers for one customer, ranked by expected incremental profit.

    Reads live stock, launch status and contact caps from the state store; every launch offer
    shown carries a unit held for the customer (`reservation`). The decision is in the log
    before the response leaves.
    """
    req = parse_json(DecisionRequest, "decision request")
    model, live = _store().current(), _live()
    anonymous = req.customer_id is None
    who = req.session_id if anonymous else req.customer_id
    assert who is not None  # the schema requires one of them
    served = _decide(model, live, who, req.channel, req.limit, req.context,
                     anonymous=anonymous)
    [sent] = log_decisions(live, model, [served])
    return jsonify(_answer(model, served, sent))


@bp.post("/v1/decisions:batch")
@require("storefront")
def create_decisions() -> ResponseReturnValue:
    """Decisions for up to 1,000 customers in one call (one channel and context).

    One entry per requested customer, in order; an unknown customer gets an error entry and
    the others are still decided. The whole batch is logged in one transaction before the
    response leaves.
    """
    req = parse_json(BatchDecisionRequest, "batch decision request")
    model, live = _store().current(), _live()
    answers: list[dict | Served] = []
    for customer_id in req.customer_ids:
        try:
            answers.append(_decide(model, live, customer_id, req.channel, req.limit,
                                   req.context))
        except UnknownCustomer as exc:
            answers.append({"customer_id": customer_id, "error": error_fields(exc)})
    served = [a for a in answers if isinstance(a, Served)]
    sent = iter(log_decisions(live, model, served))
    return jsonify({"decisions": [_answer(model, a, next(sent)) if isinstance(a, Served)
                                  else a for a in answers]})


@bp.put("/v1/inventory")
@require("admin")
def put_inventory() -> ResponseReturnValue:
    """Set on_hand for a batch of inventory rows (admin); the next decision sees it."""
    update = parse_json(InventoryUpdate, "inventory update")
    rows = [StockRow(r.sku, r.size, r.color, r.location, r.on_hand) for r in update.rows]
    live = _live()
    count = live.store.upsert_inventory(rows, now=datetime.now(UTC))
    log.info("inventory update: %d rows, version %d", count, live.store.inventory_version())
    return jsonify({"updated": count, "inventory_version": live.store.inventory_version()})


@bp.post("/v1/outcomes")
@require("staff")
def post_outcome() -> ResponseReturnValue:
    """What the customer did after a decision; idempotent (the same event twice counts once).

    accepted / purchased confirm the launch unit held for the offer; declined releases it and
    counts towards the decline cap; shown is recorded only. A purchase not tied to an offer
    (offer_id null: e.g. a holdout customer buying anyway) is what incrementality compares.
    """
    outcome = parse_json(OutcomeRequest, "outcome")
    result = record_outcome(_live().store, outcome, datetime.now(UTC))
    return jsonify(result)


@bp.get("/v1/model")
def model_info() -> ResponseReturnValue:
    """The model being served: name, version, alias, run id and its evaluation metrics."""
    store = _store()
    model = store.current()
    return jsonify({"name": model.name, "version": model.version, "alias": model.alias,
                    "run_id": model.run_id, "metrics": model.metrics,
                    "customers": len(model.customers), "loaded_at": model.loaded_at,
                    # store: `customers` counts the sample a load summarized, not the base
                    "customers_from": "store" if model.from_store else "file",
                    "worker_pid": os.getpid(),
                    "last_reload_error": current_app.extensions["nba.redactor"].public_value(
                        store.last_reload_error)})


@bp.post("/v1/admin/reload")
@require("admin")
def admin_reload() -> ResponseReturnValue:
    """Check the alias now and load its version into the worker that answers.

    Auth: an admin API key (`Authorization: Bearer <key>`, e.g. NBA_ADMIN_TOKEN). 403
    `forbidden` when no key is configured or the key's role is lower, 401 `unauthorized` when
    the key is missing or wrong. 200 with status `reloaded` or `unchanged`; 409 `reload_failed` when
    the version is rejected (it is retried even if rejected before), the alias points at no
    version, the registry does not answer, or a reload is already running; the serving model
    never changes on a 409. Only this worker reloads: the others follow at their next poll.
    """
    store = _store()
    previous = store.version
    result = store.reload_if_changed(retry_rejected=True)
    log.info("admin reload in pid %d: %s (version %s, serving %s)", os.getpid(), result.status,
             result.version, store.version)
    if result.status not in (RELOADED, UNCHANGED):
        raise ReloadFailed(
            f"reload {result.status}: {result.error}; still serving "
            f"{f'version {previous}' if previous else 'nothing'}",
            {"status": result.status, "version": result.version, "error": result.error,
             "serving_version": store.version, "worker_pid": os.getpid()})
    return jsonify({"status": result.status, "version": store.version,
                    "previous_version": previous, "worker_pid": os.getpid()})


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up; touches no dependency (says nothing about the model or the store)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when a champion is loaded and the state store answers; else 503 in the error shape.

    With Retry-After: `model_not_ready` (the model is not loaded) or `state_store_unavailable`
    (it is, but the store does not answer); `details` names each missing part, without any
    address or secret.
    """
    store = _store()
    problems: dict[str, str] = {"status": "not_ready"}
    if not store.ready:
        problems["model"] = store.last_error or "loading"
    try:
        _live().store.inventory_version()  # one-row read, within the request's budget
    except StateStoreError as exc:
        problems["state_store"] = exc.problem
        if store.ready:
            exc.details = problems  # type: ignore[attr-defined]  # read by service.errors
            raise
    if not store.ready:
        raise ModelNotReady(problems["model"], problems)
    model = store.current()
    return jsonify({"status": "ready", "model": {"name": model.name, "version": model.version},
                    "state_store": "ok"})
