"""The live state one decision reads, as plain data: stock, launch status, contact history.

The state store (or a file, or a pyfunc's parameters) fills a `StateSnapshot`; the decision
core only reads it, so every caller that passes the same snapshot gets the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class StockLookup(Protocol):
    """Units on hand for a SKU matching a size/colour at a location (None = online)."""

    def units(self, sku: str, size: str | None, color: str | None,
              location: str | None) -> int: ...

    def variants(self, sku: str, location: str | None) -> tuple[bool, bool]:
        """Whether the SKU's units on hand at `location` come in sizes, and in colours."""
        ...


@dataclass(frozen=True)
class LaunchStatus:
    """Live state of one launch: units not yet held or sold, and the value floor right now."""

    remaining: int
    floor: float = 0.0  # customers valued below it get no unit; 0 = anyone


@dataclass(frozen=True)
class ContactHistory:
    """What the contact caps need: offers already made on this channel, recent declines."""

    offers_in_window: int = 0
    declines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StateSnapshot:
    """Everything live a decision reads. `stock` None: decided without an inventory (said in
    the decision); `launches` offer_id -> status (missing: only fixed floors apply);
    `contacts` None: no contact cap is counted (offline evaluation)."""

    stock: StockLookup | None = None
    launches: Mapping[str, LaunchStatus] = field(default_factory=dict)
    contacts: ContactHistory | None = None


#: No live state: offline evaluation, a pyfunc called without an inventory.
EMPTY = StateSnapshot()
