"""The base of the errors the service's domain code raises; `service.errors` maps them to HTTP.

Domain modules define their own subclasses (`schemas.InvalidRequest`,
`model_store.ModelNotReady`, `outcomes.UnknownDecision`, ...) and know nothing of statuses or
response bodies, so the CLI and batch code can catch them without Flask.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A problem with what was asked: a message for people and details for programs."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
