"""Metrics and structured logs: `/metrics` for Prometheus, one JSON object per log line.

Metrics work under several gunicorn workers through prometheus_client's multiprocess mode:
each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and a scrape, answered by
any worker, merges every worker's files (gunicorn_hooks.py prepares the directory). Without
that variable (tests, `flask run`) the default in-process registry is served.

The mode is fixed when prometheus_client is first imported, so the variable must be set
before that: in the gunicorn master, before workers fork (see `init_app`'s check).

Label values are bounded on purpose: the endpoint is the Flask URL rule (`/v1/decisions`,
never the raw path; `unmatched` for unknown routes), offers come from the catalog, and
suppression reasons and reload statuses are fixed codes. Customer ids never become labels.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

EXTENSION = "nba.observability"
REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"
#: the service answers in about 2 ms: fine buckets there, coarse ones up to a second
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# defence in depth: a bearer token that slips into a message or traceback is masked
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")

REQUESTS = Counter("nba_http_requests", "HTTP requests answered, by URL rule and status.",
                   ["endpoint", "status"])
LATENCY = Histogram("nba_http_request_duration_seconds",
                    "Time from routing to response, by URL rule and status.",
                    ["endpoint", "status"], buckets=LATENCY_BUCKETS)
DECISIONS = Counter("nba_decisions", "Decisions served (each may show several offers).")
OFFERS = Counter("nba_decision_offers", "Offers shown in decisions, by offer.", ["offer"])
SUPPRESSIONS = Counter("nba_decision_suppressions", "Offers suppressed in decisions, by reason.",
                       ["reason"])
RELOADS = Counter("nba_model_reloads", "Model load attempts by outcome (rejected: a failure).",
                  ["status"])
# liveall: one sample per live worker (label `pid`), so a rollout shows which worker serves
# which version; a dead worker's samples go with it (gunicorn_hooks.child_exit)
MODEL_INFO = Gauge("nba_model_info", "The model version a worker serves (1), or served (0).",
                   ["name", "version"], multiprocess_mode="liveall")

_served: tuple[str, str] | None = None
_served_lock = threading.Lock()


def multiprocess_dir() -> str | None:
    """The multiprocess metrics directory, or None when metrics live in this process only."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def init_app(app: Flask) -> None:
    """Install request ids, timing and metrics hooks and the public `/metrics` route; idempotent.

    Raises RuntimeError when PROMETHEUS_MULTIPROC_DIR is set but prometheus_client was imported
    before it was: each worker would then count alone and every scrape would be wrong.
    """
    if EXTENSION in app.extensions:
        return
    if multiprocess_dir() is not None and not getattr(values.ValueClass, "_multiprocess", True):
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was "
                           "imported: set it before (gunicorn_hooks.prepare_multiprocess_dir "
                           "in gunicorn.conf.py)")
    app.extensions[EXTENSION] = True
    # first, so the request id and the clock exist even when a later hook rejects the request
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


def request_id() -> str:
    """This request's id: a clean incoming X-Request-ID, else a new uuid4 hex (kept in g)."""
    rid = g.get("request_id")
    if rid is None:
        rid = sanitize_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = rid
    return rid


def sanitize_request_id(value: str | None) -> str:
    """`value` when it is 1-128 characters of [A-Za-z0-9._-]; a fresh uuid4 hex otherwise."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _start_request() -> None:
    g.request_started = time.perf_counter()
    request_id()


#: a rule's converter (<path:customer_ref>): not part of the metric label, which names the
#: route as it always has (/v1/customers/<customer_ref>)
_CONVERTER = re.compile(r"<\w+:(\w+)>")


def _finish_request(response: Response) -> Response:
    endpoint = (_CONVERTER.sub(r"<\1>", request.url_rule.rule) if request.url_rule is not None
                else UNMATCHED)
    status = str(response.status_code)
    REQUESTS.labels(endpoint, status).inc()
    started = g.get("request_started")
    if started is not None:
        LATENCY.labels(endpoint, status).observe(time.perf_counter() - started)
    response.headers[REQUEST_ID_HEADER] = request_id()
    return response


def metrics_view() -> Response:
    """Prometheus text format: every worker's samples in multiprocess mode, else this process's."""
    if multiprocess_dir() is None:
        registry = REGISTRY
    else:
        # a fresh registry per scrape: the collector reads the files as they are now
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def record_decision(offers: list[str], suppressed_reasons: list[str]) -> None:
    """Count one decision, the offers it shows and the reason of each suppression."""
    DECISIONS.inc()
    for offer in offers:
        OFFERS.labels(offer).inc()
    # one increment per distinct reason: a 50-offer catalog suppresses dozens per decision
    for reason, count in collections.Counter(suppressed_reasons).items():
        SUPPRESSIONS.labels(reason).inc(count)


def record_reload(status: str, version: str | None = None) -> None:
    """Count a model load attempt by its status (model_store's RELOADED, REJECTED, ...).

    `version` is not a label (versions grow without bound); it goes to the debug log.
    """
    RELOADS.labels(status).inc()
    logging.getLogger(__name__).debug("model reload %s", status,
                                      extra={"model_version": version})


def set_model_version(name: str, version: str) -> None:
    """Make `name`/`version` this process's served model (1) and the previous one 0.

    Labels cannot be removed in multiprocess mode, hence the 0: query `nba_model_info == 1`.
    """
    global _served
    with _served_lock:
        if _served == (name, version):
            return
        if _served is not None:
            MODEL_INFO.labels(*_served).set(0)
        MODEL_INFO.labels(name, version).set(1)
        _served = (name, version)


# ---------------------------------------------------------------- logging

_FIELDS = ("model_version", "decision_id", "customer_id")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the current request's, or None outside requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops a record; only annotates it."""
        if has_request_context():
            record.request_id = request_id()
        elif not hasattr(record, "request_id"):
            record.request_id = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, request_id, ...

    Only named fields are written (model_version, decision_id, customer_id when given via
    `extra=`), so nothing else attached to a record, such as a header, reaches the log.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "pid": record.process,
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            # exc_text: already secret-free when service.redact's record factory is installed
            doc["exception"] = _redact(record.exc_text or self.formatException(record.exc_info))
        elif record.stack_info:
            doc["stack"] = _redact(self.formatStack(record.stack_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


def _redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", text)


PLAIN_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(level: str | int = "INFO", json_logs: bool = False,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one to `stream` (stderr); returns it.

    JSON lines when `json_logs` (gunicorn: NBA_LOG_FORMAT=json), plain text otherwise; either
    way each line carries the request id when logged while a request is handled.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
