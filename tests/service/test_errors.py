"""Domain errors become HTTP in one place (service.errors): status, stable code, one shape."""

from __future__ import annotations

import pytest
from flask import Flask

from reports import NoDecisions
from service.auth import Forbidden, RateLimited, Unauthorized
from service.domain import DomainError
from service.errors import HTTP_ERRORS, register_error_handlers
from service.events import CardTaken, EventsNotServed
from service.limits import PayloadTooLarge
from service.model_store import ModelNotReady, ReloadFailed, UnknownCustomer
from service.outcomes import UnknownDecision
from service.schemas import InvalidRequest
from state import StateStoreError

CASES = [
    (InvalidRequest("bad field", [{"field": "x"}]), 400, "invalid_request", {}),
    (Unauthorized("no key"), 401, "unauthorized", {"WWW-Authenticate": 'Bearer realm="nba"'}),
    (Forbidden("role too low"), 403, "forbidden", {}),
    (UnknownCustomer("who?", {"customer_id": "C1"}), 404, "unknown_customer", {}),
    (UnknownDecision("which?"), 404, "unknown_decision", {}),
    (NoDecisions("empty log", {"since": None}), 404, "no_decisions", {}),
    (ReloadFailed("rejected"), 409, "reload_failed", {}),
    (EventsNotServed("from a file"), 409, "events_not_served", {}),
    (CardTaken("already registered", {"card": "7700"}), 409, "card_taken", {}),
    (RateLimited("slow down", "3"), 429, "rate_limited", {"Retry-After": "3"}),
    (PayloadTooLarge("too big", {"max_bytes": 10}), 413, "payload_too_large", {}),
    (ModelNotReady("loading"), 503, "model_not_ready", {"Retry-After": "5"}),
    (StateStoreError("sqlite:///x.db", "locked"), 503, "state_store_unavailable",
     {"Retry-After": "2"}),
]


def app_raising(error: Exception) -> Flask:
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/boom")
    def boom():
        raise error

    return app


@pytest.mark.parametrize(("error", "status", "code", "headers"), CASES,
                         ids=[type(case[0]).__name__ for case in CASES])
def test_each_domain_error_has_its_status_code_and_the_one_shape(error, status, code, headers):
    response = app_raising(error).test_client().get("/boom")
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    # a state-store error says what, never where (its URL stays in the log)
    assert body["error"]["message"] == ("the state store is unavailable: locked"
                                        if isinstance(error, StateStoreError) else str(error))
    assert body["error"]["details"] == getattr(error, "details", None)
    for name, value in headers.items():
        assert response.headers[name] == value


def test_every_listed_error_is_tested_and_every_service_domain_error_is_listed():
    assert {type(case[0]) for case in CASES} == set(HTTP_ERRORS)
    unlisted = [cls.__name__ for cls in DomainError.__subclasses__() if cls not in HTTP_ERRORS]
    assert unlisted == []


def test_an_unlisted_error_is_a_500_without_a_traceback():
    class Surprise(Exception):
        pass

    response = app_raising(Surprise("secret detail")).test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "secret detail" not in response.get_data(as_text=True)
