"""Request and response schemas: the one definition that validates requests."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.catalog import CHANNELS

MAX_LIMIT = 20


class DecisionContextIn(BaseModel):
    """Optional situation of the decision."""

    model_config = ConfigDict(extra="allow")

    store_id: str | None = Field(default=None, min_length=1, max_length=64)


class DecisionRequest(BaseModel):
    """POST /v1/decisions body."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=128)
    channel: str
    limit: int = Field(default=3, ge=1, le=MAX_LIMIT)
    context: DecisionContextIn = Field(default_factory=DecisionContextIn)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        if value not in CHANNELS:
            raise ValueError(f"unknown channel '{value}'; use one of {list(CHANNELS)}")
        return value


MAX_INVENTORY_ROWS = 10_000
OUTCOME_EVENTS = ("shown", "accepted", "declined", "purchased")


class InventoryRowIn(BaseModel):
    """One row of the inventory data contract."""

    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=128)
    size: str | None = Field(default=None, min_length=1, max_length=32)
    color: str | None = Field(default=None, min_length=1, max_length=64)
    location: str | None = Field(default=None, min_length=1, max_length=64)
    on_hand: int = Field(ge=0, le=10_000_000)


class InventoryUpdate(BaseModel):
    """PUT /v1/inventory body: a batch of rows, each setting on_hand for its key."""

    model_config = ConfigDict(extra="forbid")

    rows: list[InventoryRowIn] = Field(min_length=1, max_length=MAX_INVENTORY_ROWS)

    @model_validator(mode="after")
    def _unique_keys(self) -> InventoryUpdate:
        seen: dict[tuple, int] = {}
        for i, row in enumerate(self.rows):
            key = (row.sku, row.size, row.color, row.location)
            if key in seen:
                raise ValueError(f"rows {seen[key]} and {i} are duplicate keys "
                                 f"(sku, size, color, location) = {key}")
            seen[key] = i
        return self


class OutcomeRequest(BaseModel):
    """POST /v1/outcomes body: what the customer did with an offer of a decision."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    offer_id: str | None = Field(default=None, min_length=1, max_length=128)
    event: Literal["shown", "accepted", "declined", "purchased"]
    revenue: float = Field(default=0.0, ge=0, le=1e9)

    @field_validator("revenue")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("revenue must be a finite number")
        return value


class ReasonOut(BaseModel):
    """Why an offer is shown."""

    code: str
    message: str


class ReservationOut(BaseModel):
    """The launch unit held for this customer until it expires or they answer."""

    reservation_id: str
    expires_at: str


class OfferOut(BaseModel):
    """A recommended offer."""

    offer_id: str
    rank: int
    expected_incremental_value: float
    uplift: float
    conversion_probability: float
    action: Literal["offer", "waitlist", "preorder"]
    reasons: list[ReasonOut]
    reservation: ReservationOut | None = None


class SuppressedOut(BaseModel):
    """A suppressed offer."""

    offer_id: str
    reason: str
    message: str


class ModelRef(BaseModel):
    """Which registered model version decided."""

    name: str
    version: str


class DecisionResponse(BaseModel):
    """POST /v1/decisions response."""

    decision_id: str
    customer_id: str
    model: ModelRef
    offers: list[OfferOut]
    suppressed: list[SuppressedOut]
