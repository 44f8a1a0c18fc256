"""API keys with roles: who may call what.

Roles nest: `storefront` (decisions) < `staff` (also outcomes, lookups, the staff page's data,
reports) < `admin` (also everything that changes the service: reload, inventory). Keys come from
NBA_API_KEYS ("role:key,role:key") and/or the file NBA_API_KEYS_FILE (one "role key" per line,
# comments); NBA_ADMIN_TOKEN is an admin key. A key is never logged: logs and rate limits use its
id, a short SHA-256 prefix. Every presented key is compared with every configured key in
constant time. Development mode (NBA_DEV_MODE=1) lets requests without a key through as admin,
loudly; a wrong key is still refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from flask import current_app, g, request

from service.domain import DomainError

log = logging.getLogger(__name__)

ROLES = ("storefront", "staff", "admin")  # each role includes the ones before it
PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (never the key) and its role."""

    key_id: str
    role: str

    def may(self, role: str) -> bool:
        """True when this principal's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)


DEV = Principal("dev-mode", "admin")


class Unauthorized(DomainError):
    """The API key is missing or wrong (the answer names the auth scheme, RFC 6750)."""


class Forbidden(DomainError):
    """The action is switched off here, or the key's role is too low for it."""


class RateLimited(DomainError):
    """Too many requests for this API key; `retry_after` seconds say when to come back."""

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message, {"retry_after_seconds": int(retry_after)})
        self.retry_after = retry_after


def key_id(key: str) -> str:
    """A stable, non-secret name for a key (logs, metrics, rate limits)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyRing:
    """The configured keys, hashed; answers `who is this bearer?` in constant time."""

    def __init__(self, keys: Iterable[tuple[str, str]], dev_mode: bool = False) -> None:
        self.dev_mode = dev_mode
        self._keys: list[tuple[bytes, Principal]] = []
        for role, key in keys:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} for an API key; use one of "
                                 f"{list(ROLES)}")
            if len(key) < 16:
                raise ValueError(f"the {role} key {key_id(key)} is too short: use at least 16 "
                                 "characters (e.g. `openssl rand -hex 24`)")
            self._keys.append((hashlib.sha256(key.encode()).digest(),
                               Principal(key_id(key), role)))

    @classmethod
    def parse(cls, spec: str | None, file: Path | None, admin_token: str | None,
              dev_mode: bool = False) -> KeyRing:
        """Keys from "role:key,..." text, a "role key" per line file, and the admin token."""
        pairs: list[tuple[str, str]] = []
        for item in (spec or "").split(","):
            if item.strip():
                role, sep, key = item.strip().partition(":")
                if not sep or not key.strip():
                    raise ValueError("NBA_API_KEYS must look like 'role:key,role:key' "
                                     f"(roles: {', '.join(ROLES)})")
                pairs.append((role.strip(), key.strip()))
        if file is not None:
            for number, line in enumerate(file.read_text().splitlines(), start=1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise ValueError(f"{file}:{number}: expected 'role key'")
                pairs.append((parts[0], parts[1]))
        if admin_token:
            pairs.append(("admin", admin_token))
        return cls(pairs, dev_mode)

    def __len__(self) -> int:
        return len(self._keys)

    def identify(self, key: str) -> Principal | None:
        """The principal of a presented key, or None; time does not depend on which matched."""
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for known, principal in self._keys:
            if hmac.compare_digest(digest, known):
                found = principal
        return found

    def authenticate(self, header: str | None) -> Principal:
        """The caller of a request with this Authorization header; raises 401 otherwise."""
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            if self.dev_mode:
                return DEV
            # worded so that service.redact (which masks what follows "Bearer ") leaves it
            raise Unauthorized("missing API key: send an Authorization header whose value "
                               "is the word Bearer, a space and the key")
        principal = self.identify(given.strip())
        if principal is None:  # a wrong key is an error even in development mode
            raise Unauthorized("unknown API key")
        return principal


def require(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route decorator: 401 without a valid key, 403 when the key's role is too low."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            keys: KeyRing = current_app.extensions["nba.keys"]
            if not keys.dev_mode and len(keys) == 0:
                raise Forbidden("no API keys are configured: set NBA_API_KEYS (or "
                                "NBA_API_KEYS_FILE), or NBA_DEV_MODE=1 for local development")
            principal = keys.authenticate(request.headers.get("Authorization"))
            if not principal.may(role):
                raise Forbidden(f"this endpoint needs the {role} role; the key "
                                f"{principal.key_id} has {principal.role}")
            g.principal = principal
            limiter = current_app.extensions.get("nba.ratelimit")
            if limiter is not None and principal is not DEV:
                verdict = limiter.take(principal.key_id)
                if not verdict.allowed:
                    raise RateLimited(f"rate limit of key {principal.key_id} exceeded; retry "
                                      f"after {verdict.retry_after_header} s",
                                      verdict.retry_after_header)
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]  # read by the OpenAPI doc
        return guarded

    return decorate
