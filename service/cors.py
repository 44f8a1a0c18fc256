"""CORS for configured storefront origins (NBA_CORS_ORIGINS), nothing for anyone else.

A browser on a storefront page calls the API directly: preflight `OPTIONS` requests from an
allowed origin are answered here (204, allowed methods and headers, cached for 10 minutes), and
responses to an allowed origin carry `Access-Control-Allow-Origin` for that exact origin. Other
origins get no CORS headers, so the browser blocks them; server-to-server calls are unaffected.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, PUT, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID"
EXPOSED_HEADERS = "X-Request-ID, Retry-After"
MAX_AGE_SECONDS = "600"


def init_app(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer preflights and tag responses for the allowed origins."""
    allowed = frozenset(o.rstrip("/") for o in origins)
    if not allowed:
        return

    @app.before_request
    def _preflight() -> Response | None:
        origin = request.headers.get("Origin")
        if (request.method == "OPTIONS" and origin in allowed
                and request.headers.get("Access-Control-Request-Method")):
            response = Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE_SECONDS
            return response
        return None

    @app.after_request
    def _allow_origin(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")
        return response
