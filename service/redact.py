"""Secrets and internal addresses never leave the process.

Every URL that can hold a secret (MLFLOW_TRACKING_URI, NBA_STATE_URL, NBA_REDIS_URL) is known
to a `Redactor`, which gives two views of any text:

- `secret_free(text)`: passwords masked (those of the configured URLs, and any `user:pw@` or
  `password=` in any URL), and any key, token or secret in a query string. Every log record
  of the process goes through it (`install_log_redaction`), whoever logs it: our code,
  MLflow, SQLAlchemy, gunicorn.
- `public(text)`: also without the user, host, port and database of the configured URLs, nor
  any URL at all: what error bodies, `/readyz` and `/v1/model` may show to anyone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from state import mask_url

MASK = "***"
_ANY_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://[^\s'\"<>)]+")
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
#: a key a client put in a query string (?api_key=, ?client_secret=, ?refresh_token=...): the
#: access log writes the request line. Any parameter whose name holds one of these words; the
#: service's own (store_id, sku, by, since) hold none
_QUERY_KEY = re.compile(
    r"(?i)([?&][\w-]*(?:key|token|secret|passw(?:or)?d|auth|credential|signature)[\w-]*=)"
    r"[^&\s\"']+")
#: words too common to hide as a "user" or "database" (they would mangle ordinary messages)
_COMMON = {"", "postgresql", "admin", "user", "redis", "mlflow", "test", "default",
           "localhost", "db", "0"}


class Redactor:
    """Knows the secrets and private parts of the configured URLs; masks them in any text."""

    def __init__(self, urls: Iterable[str | None] = ()) -> None:
        self.secrets: set[str] = set()
        private: set[str] = set()
        for url in urls:
            if not url or "://" not in url:
                continue
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.password:
                self.secrets |= {parts.password, unquote(parts.password)}
            for key, value in parse_qsl(parts.query):
                if key.lower() in ("password", "pass", "passwd") and value:
                    self.secrets.add(value)
            database = parts.path.lstrip("/")
            private |= {p for p in (parts.username, parts.hostname, database,
                                    database.rsplit("/", 1)[-1]) if p}
            if port is not None:
                private.add(str(port))
        self.secrets = {s for s in self.secrets if len(s) >= 3}
        self._secret = _alternation(self.secrets)
        self._private = _alternation(p for p in private if p.lower() not in _COMMON
                                     and len(p) >= 2)

    def secret_free(self, text: str) -> str:
        """`text` with every known password and every password inside a URL masked."""
        if self._secret is not None:
            text = self._secret.sub(MASK, text)
        if "://" in text or "password=" in text.lower():
            text = _ANY_URL.sub(lambda m: mask_url(m.group(0)), text)
        if "=" in text:
            text = _QUERY_KEY.sub(r"\1[redacted]", text)
        return _BEARER.sub(r"\1[redacted]", text)

    def public(self, text: str) -> str:
        """`text` fit for anyone: no secret, no URL, no configured user, host, port or db."""
        text = _ANY_URL.sub(lambda m: f"<{m.group(1)} URL>", self.secret_free(text))
        if self._private is not None:
            text = self._private.sub("<redacted>", text)
        return _IP.sub("<host>", text)

    def public_value(self, value: Any) -> Any:
        """`public` applied to every string inside a JSON-like value."""
        if isinstance(value, str):
            return self.public(value)
        if isinstance(value, dict):
            return {k: self.public_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.public_value(v) for v in value]
        return value


def _alternation(words: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of `words` standing alone (longest first), or None."""
    ordered = sorted(set(words), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, ordered)) + r")(?![\w-])")


def install_log_redaction(redactor: Redactor) -> None:
    """Make every log record of this process secret-free, message and traceback, from now on.

    A record factory rather than a handler filter: MLflow, gunicorn and others attach their
    own handlers, which a filter on ours would never see. Python warnings go through logging.
    """
    previous = logging.getLogRecordFactory()
    inner = getattr(previous, "nba_inner", previous)  # installing twice wraps once

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when the record is emitted
            return record
        cleaned = redactor.secret_free(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redactor.secret_free(
                logging.Formatter().formatException(record.exc_info))
        return record

    factory.nba_inner = inner  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    logging.captureWarnings(True)
