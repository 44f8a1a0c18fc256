"""What one request may cost: its body's size and nesting, and its time in the state store.

- Size: a body above the route's cap is refused with 413 from its Content-Length, before any
  of it is read (a chunked body is cut off at the cap). nginx enforces the same caps in front
  (service/front.py); this is the same rule for `NBA_FRONT=none` and the test client.
- Nesting: Python's json recursion fails on deep nesting with a RecursionError (a 500 with a
  traceback before); here any body too deep is a 400.
- Time: every request runs under one deadline for all its state-store calls (state.budget).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request

from service.domain import DomainError
from service.schemas import InvalidRequest
from service.settings import ServiceSettings
from state import budget

#: routes whose body may be larger (admin bulk writes) and so get `bulk_body_bytes`
BULK_ENDPOINTS = frozenset({"api.put_inventory"})


class PayloadTooLarge(DomainError):
    """The request body is larger than the route accepts."""


def init_app(app: Flask, settings: ServiceSettings) -> None:
    """Install the size check and the per-request state-store deadline."""

    @app.before_request
    def _limit_request() -> None:
        cap = (settings.bulk_body_bytes if request.endpoint in BULK_ENDPOINTS
               else settings.max_body_bytes)
        length = request.content_length
        if length is not None and length > cap:
            raise PayloadTooLarge(f"the request body has {length:,} bytes; this endpoint "
                                  f"accepts at most {cap:,}", {"max_bytes": cap})
        request.max_content_length = cap  # a chunked body is cut off at the cap
        g.state_deadline_before = budget.start(settings.state_timeout)

    @app.after_request
    def _store_answered(response: Response) -> Response:
        # tell the store's breaker how a request that used the store went (a state-store error
        # has told it already; any other 5xx counts as a failure too)
        handle = app.extensions.get("nba.state")
        if handle is not None and handle.breaker is not None and g.get("state_used"):
            if response.status_code < 500:
                handle.breaker.succeeded()
            elif not g.get("state_failure_told"):
                handle.breaker.failed()
        return response

    @app.teardown_request
    def _end_deadline(_error: BaseException | None) -> None:
        if "state_deadline_before" in g:
            budget.restore(g.pop("state_deadline_before"))


def read_json(max_depth: int) -> Any:
    """The request body as JSON; InvalidRequest when it is not JSON or nests too deeply."""
    if not request.is_json:
        raise InvalidRequest("request body must be a JSON object (Content-Type: "
                             "application/json)")
    raw = request.get_data(cache=True)  # raises 413 past the cap (max_content_length)
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidRequest(f"request body nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if depth(body) > max_depth:
        raise InvalidRequest(f"request body nests deeper than {max_depth} levels")
    return body


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar: 0); iterative, never recursive."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def check_context(context: Any, settings: ServiceSettings) -> None:
    """A decision `context` within its key, nesting and size bounds; InvalidRequest otherwise."""
    if not isinstance(context, dict):
        return  # the schema says what is wrong with it
    if len(context) > settings.context_max_keys:
        raise InvalidRequest(f"context has {len(context)} keys; at most "
                             f"{settings.context_max_keys} are accepted")
    if depth(context) > settings.context_max_depth:
        raise InvalidRequest(f"context nests deeper than {settings.context_max_depth} levels")
    size = len(json.dumps(context, separators=(",", ":")))
    if size > settings.context_max_bytes:
        raise InvalidRequest(f"context has {size:,} bytes as JSON; at most "
                             f"{settings.context_max_bytes:,} are accepted")
