"""The plain records the state store hands out: stock rows and snapshots, holds, counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_MAX_STOCK_ANSWERS = 100_000  # per snapshot: sizes x colours x locations stay far below


@dataclass(frozen=True)
class StockRow:
    """One inventory row: None size/colour fits any; None location is online, else a store id."""

    sku: str
    size: str | None
    color: str | None
    location: str | None
    on_hand: int


@dataclass(frozen=True)
class StockSnapshot:
    """Inventory rows read at one version: immutable, in memory; a decide.StockLookup."""

    rows: tuple[StockRow, ...]
    version: int = 0
    _by_sku: Mapping[str, tuple[StockRow, ...]] = field(init=False, repr=False, compare=False)
    # answers already worked out: a snapshot never changes, and every decision asks again
    _answers: dict[tuple[str, str | None, str | None, str | None], int] = field(
        init=False, repr=False, compare=False)
    _variants: dict[tuple[str, str | None], tuple[bool, bool]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_sku: dict[str, list[StockRow]] = defaultdict(list)
        for row in self.rows:
            by_sku[row.sku].append(row)
        object.__setattr__(self, "_by_sku",
                           MappingProxyType({sku: tuple(rows) for sku, rows in by_sku.items()}))
        object.__setattr__(self, "_answers", {})
        object.__setattr__(self, "_variants", {})

    @classmethod
    def from_rows(cls, rows: Iterable[StockRow], version: int = 0) -> StockSnapshot:
        """Build from any rows (tests, files); `version` is the store version they were read at."""
        return cls(tuple(rows), version)

    def units(self, sku: str, size: str | None, color: str | None,
              location: str | None) -> int:
        """Units of `sku` at exactly `location` (None = online) that fit the size and colour.

        A row with no size (or colour) fits any; a customer with no preference takes any.
        """
        key = (sku, size, color, location)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._count(sku, size, color, location)
            if len(self._answers) < _MAX_STOCK_ANSWERS:
                self._answers[key] = answer
        return answer

    def variants(self, sku: str, location: str | None) -> tuple[bool, bool]:
        """Whether `sku`'s units on hand at `location` come in sizes, and in colours."""
        key = (sku, location)
        answer = self._variants.get(key)
        if answer is None:
            rows = [r for r in self._by_sku.get(sku, ()) if r.location == location and r.on_hand]
            answer = (any(r.size is not None for r in rows),
                      any(r.color is not None for r in rows))
            if len(self._variants) < _MAX_STOCK_ANSWERS:
                self._variants[key] = answer
        return answer

    def _count(self, sku: str, size: str | None, color: str | None,
               location: str | None) -> int:
        total = 0
        for row in self._by_sku.get(sku, ()):
            if row.location != location:
                continue
            if row.size is not None and size is not None and row.size != size:
                continue
            if row.color is not None and color is not None and row.color != color:
                continue
            total += row.on_hand
        return total


@dataclass(frozen=True)
class Reservation:
    """One customer's hold on one unit of a launch."""

    reservation_id: str
    offer_id: str
    customer_id: str
    decision_id: str
    status: str  # "reserved" | "confirmed" | "released" | "expired"
    expires_at: datetime
    created: bool  # False when an existing hold of this customer was returned


@dataclass(frozen=True)
class LaunchCounts:
    """Supply and use of one launch at a moment (overdue holds no longer count)."""

    offer_id: str
    supply: int
    reserved: int
    confirmed: int

    @property
    def remaining(self) -> int:
        """Units still free; never below 0 even if the catalog cut supply under what is held."""
        return max(0, self.supply - self.reserved - self.confirmed)


@dataclass(frozen=True)
class DecisionState:
    """What one decision reads from the store, read at one moment."""

    inventory_version: int
    launches: dict[str, LaunchCounts]  # launches that have had a reservation
    contacts: int  # offers made to the customer on the channel since the cap window began
    declines: dict[str, int]  # declines per offer within the decline window
    #: the customer's stored profile ({column: value}); None when not asked for or not stored
    profile: dict[str, Any] | None = None


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; ValueError for anything but a timezone-aware datetime."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)
