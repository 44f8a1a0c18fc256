"""Reports over the decision log: incrementality against the randomized holdout, the decision
funnel, and covariate balance between holdout and treated customers.

Each report is a pure function of the frames `state.log.DecisionLog` returns (and the catalog);
reading the store, printing and writing files happen only in `render`, `cli` and
`service.reports_api`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class ReportError(ValueError):
    """A report cannot be computed from what it was given (e.g. no decisions logged)."""


class NoDecisions(ReportError):
    """The decision log holds no decisions (in the requested window) to report on."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def parse_since(text: str) -> datetime:
    """An ISO 8601 date or timestamp as an aware UTC datetime (naive values are taken as UTC).

    Raises ValueError with a message naming the expected format.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO 8601 date or timestamp "
                         "(e.g. 2025-03-01 or 2025-03-01T09:00:00+00:00)") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00: past the last representable moment
        raise ValueError(f"'{text}' is out of range in UTC (years 1 to 9999)") from None
