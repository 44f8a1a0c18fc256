"""Domain exceptions and the one handler that turns every error into the same JSON shape.

Shape: {"error": {"code": str, "message": str, "details": object}}. Never an HTML page,
never a traceback, never a 500 for something the client did.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from service.throttle import ThrottledLog
from state.errors import StateStoreError

log = logging.getLogger(__name__)
_warn = ThrottledLog(log)


class ApiError(Exception):
    """Base of errors a client sees; subclasses fix the status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(ApiError):
    """The request body or query does not match the schema."""

    status = 400
    code = "invalid_request"


class UnknownCustomer(ApiError):
    """No such customer in the online feature table."""

    status = 404
    code = "unknown_customer"


class RateLimited(ApiError):
    """Too many requests for this API key; `Retry-After` says when to come back."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message, {"retry_after_seconds": int(retry_after)})
        self.headers = {"Retry-After": retry_after}


class UnknownDecision(ApiError):
    """No such decision in the decision log."""

    status = 404
    code = "unknown_decision"


class StateUnavailable(ApiError):
    """The state store (stock, launches, caps, decision log) does not answer."""

    status = 503
    code = "state_store_unavailable"
    headers = {"Retry-After": "2"}


class NotReady(ApiError):
    """/readyz: the model is not loaded or the state store does not answer (details say which)."""

    status = 503
    code = "not_ready"
    headers = {"Retry-After": "5"}


class ModelNotReady(ApiError):
    """No champion is loaded yet (or the registry has none)."""

    status = 503
    code = "model_not_ready"
    headers = {"Retry-After": "5"}


def error_body(code: str, message: str, details: Any = None) -> dict:
    """The stable error JSON, with no secret, URL or internal address in it (service.redact)."""
    redactor = current_app.extensions.get("nba.redactor")
    if redactor is not None:
        message, details = redactor.public(message), redactor.public_value(details)
    return {"error": {"code": code, "message": message, "details": details}}


def register_error_handlers(app: Flask) -> None:
    """Map domain errors, HTTP errors and anything unexpected to the JSON shape."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return (jsonify(error_body(error.code, error.message, error.details)), error.status,
                getattr(error, "headers", {}))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = ("payload_too_large" if error.code == 413
                else (error.name or "http_error").lower().replace(" ", "_"))
        return jsonify(error_body(code, error.description or error.name)), error.code or 500

    @app.errorhandler(StateStoreError)
    def _state_error(error: StateStoreError):
        handle = current_app.extensions.get("nba.state")
        if handle is not None and handle.breaker is not None \
                and not getattr(error, "breaker_open", False):
            handle.breaker.failed()
        # one line per problem per 30 s: with the store down, every request fails alike
        _warn.warning(error.problem.split(":", 1)[0], "state store: %s", error)
        return (jsonify(error_body(StateUnavailable.code,
                                   f"the state store is unavailable: {error.problem}")),
                StateUnavailable.status, StateUnavailable.headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "unexpected server error; see the logs")), 500


class Unauthorized(ApiError):
    """The API key is missing or wrong; the answer names the auth scheme (RFC 6750)."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="nba"'}


class Forbidden(ApiError):
    """The action is switched off here (e.g. admin endpoints without NBA_ADMIN_TOKEN)."""

    status = 403
    code = "forbidden"


class ReloadFailed(ApiError):
    """A requested model reload did not swap in a new model; the old one keeps serving."""

    status = 409
    code = "reload_failed"
