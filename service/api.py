"""Thin routes: parse a request schema, call the decision code, serialize a response schema."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError

from service.decide import Decision, DecisionContext
from service.errors import InvalidRequest, UnknownCustomer
from service.model_store import LoadedModel, ModelStore
from service.schemas import DecisionRequest

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)


def _store() -> ModelStore:
    return current_app.extensions["nba.model_store"]


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequest("request body must be a JSON object (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _parse(body: dict) -> DecisionRequest:
    try:
        return DecisionRequest.model_validate(body)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
                    for e in exc.errors(include_url=False, include_context=False,
                                        include_input=False)]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidRequest(f"invalid decision request: {summary}", problems) from None


def decision_json(decision_id: str, customer_id: str, model: LoadedModel,
                  decision: Decision) -> dict:
    """The response document of one decision."""
    return {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "model": {"name": model.name, "version": model.version},
        "offers": [{
            "offer_id": o.offer_id, "rank": o.rank,
            "expected_incremental_value": round(o.expected_incremental_value, 4),
            "uplift": round(o.uplift, 6),
            "conversion_probability": round(o.conversion_probability, 6),
            "reasons": [{"code": r.code, "message": r.message} for r in o.reasons],
        } for o in decision.offers],
        "suppressed": [{"offer_id": s.offer_id, "reason": s.reason, "message": s.message}
                       for s in decision.suppressed],
    }


@bp.post("/v1/decisions")
def create_decision():
    """Next-best offers for one customer, ranked by expected incremental profit."""
    req = _parse(_json_body())
    model = _store().current()
    row = model.customers.row(req.customer_id)
    if row is None:
        raise UnknownCustomer(f"unknown customer_id '{req.customer_id}'",
                              {"customer_id": req.customer_id})
    context = DecisionContext(channel=req.channel, now=datetime.now(UTC), limit=req.limit,
                              store_id=req.context.store_id)
    decision = model.policy.decide_row(model.customers, row, context, model.stock)
    decision_id = uuid.uuid4().hex
    log.info("decision %s customer=%s model=%s@%s offers=%s", decision_id, req.customer_id,
             model.name, model.version, [o.offer_id for o in decision.offers])
    return jsonify(decision_json(decision_id, req.customer_id, model, decision))


@bp.get("/v1/model")
def model_info():
    """The model being served: name, version, alias, run id and its evaluation metrics."""
    store = _store()
    model = store.current()
    return jsonify({"name": model.name, "version": model.version, "alias": model.alias,
                    "run_id": model.run_id, "metrics": model.metrics,
                    "customers": len(model.customers), "loaded_at": model.loaded_at,
                    "last_reload_error": store.last_error})


@bp.get("/healthz")
def healthz():
    """The process is up (says nothing about the model)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 once a champion is loaded, 503 before."""
    store = _store()
    if store.ready:
        model = store.current()
        return jsonify({"status": "ready", "model": {"name": model.name,
                                                      "version": model.version}})
    return jsonify({"status": "not_ready", "reason": store.last_error or "loading"}), 503
