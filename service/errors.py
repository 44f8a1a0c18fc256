"""The one place errors become HTTP: each domain error's status and stable code, one JSON shape.

Shape: {"error": {"code": str, "message": str, "details": object}}. Never an HTML page,
never a traceback, never a 500 for something the client did. Domain code raises its own
exceptions (defined where they belong) and never picks a status; codes here are API values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, has_request_context, jsonify
from werkzeug.exceptions import HTTPException

from reports import NoDecisions
from service.auth import Forbidden, RateLimited, Unauthorized
from service.events import CardTaken, EventsNotServed
from service.limits import PayloadTooLarge
from service.model_store import ModelNotReady, ReloadFailed, UnknownCustomer
from service.outcomes import UnknownDecision
from service.schemas import InvalidRequest
from service.throttle import ThrottledLog
from state.errors import StateStoreError

log = logging.getLogger(__name__)
_warn = ThrottledLog(log)
#: seconds a client should wait before asking again, per 503
RETRY_AFTER = {ModelNotReady: "5", StateStoreError: "2"}


@dataclass(frozen=True)
class HttpError:
    """How clients see one kind of error."""

    status: int
    code: str


#: every error a client can meet, by class (a subclass answers as its nearest listed base)
HTTP_ERRORS: dict[type[Exception], HttpError] = {
    InvalidRequest: HttpError(400, "invalid_request"),
    Unauthorized: HttpError(401, "unauthorized"),
    Forbidden: HttpError(403, "forbidden"),
    UnknownCustomer: HttpError(404, "unknown_customer"),
    UnknownDecision: HttpError(404, "unknown_decision"),
    NoDecisions: HttpError(404, "no_decisions"),
    ReloadFailed: HttpError(409, "reload_failed"),
    EventsNotServed: HttpError(409, "events_not_served"),
    CardTaken: HttpError(409, "card_taken"),
    PayloadTooLarge: HttpError(413, "payload_too_large"),
    RateLimited: HttpError(429, "rate_limited"),
    ModelNotReady: HttpError(503, "model_not_ready"),
    StateStoreError: HttpError(503, "state_store_unavailable"),
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The stable error JSON, with no secret, URL or internal address in it (service.redact)."""
    redactor = current_app.extensions.get("nba.redactor") if has_app_context() else None
    if redactor is not None:
        message, details = redactor.public(message), redactor.public_value(details)
    return {"error": {"code": code, "message": message, "details": details}}


def http_error(error: Exception) -> HttpError:
    """The status and code of a listed error (or of its nearest listed base class)."""
    for cls in type(error).__mro__:
        found = HTTP_ERRORS.get(cls)
        if found is not None:
            return found
    raise KeyError(f"{type(error).__name__} has no HTTP mapping")


def error_fields(error: Exception) -> dict[str, Any]:
    """{code, message, details} of a listed error (e.g. one failed entry of a batch)."""
    message = getattr(error, "message", None) or str(error)
    if isinstance(error, StateStoreError):  # what, never where (the URL stays in the log)
        message = f"the state store is unavailable: {error.problem}"
    return error_body(http_error(error).code, message, getattr(error, "details", None))["error"]


def _headers(error: Exception) -> dict[str, str]:
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="nba"'}
    if isinstance(error, RateLimited):
        return {"Retry-After": error.retry_after}
    for cls, seconds in RETRY_AFTER.items():
        if isinstance(error, cls):
            return {"Retry-After": seconds}
    return {}


def _respond(error: Exception) -> tuple[Response, int, dict[str, str]]:
    if isinstance(error, StateStoreError):  # ours, not the client's: worth an operator's look
        _state_failed(error)
    return jsonify({"error": error_fields(error)}), http_error(error).status, _headers(error)


def _state_failed(error: StateStoreError) -> None:
    """Tell the store's breaker, and log once per problem per 30 s (every request fails
    alike while the store is down)."""
    handle = current_app.extensions.get("nba.state")
    if handle is not None and handle.breaker is not None \
            and not getattr(error, "breaker_open", False):
        handle.breaker.failed()
    if has_request_context():
        g.state_failure_told = True  # service.limits: not again for the same request
    _warn.warning(error.problem.split(":", 1)[0], "state store: %s", error)


def register_error_handlers(app: Flask) -> None:
    """Map domain errors, HTTP errors and anything unexpected to the JSON shape."""
    for cls in HTTP_ERRORS:
        app.register_error_handler(cls, _respond)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        code = ("payload_too_large" if error.code == 413
                else (error.name or "http_error").lower().replace(" ", "_"))
        return jsonify(error_body(code, error.description or error.name)), error.code or 500

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "unexpected server error; see the logs")), 500
