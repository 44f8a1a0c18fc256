"""Request and response schemas: the one definition that validates requests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class ReasonOut(BaseModel):
    """Why an offer is shown."""

    code: str
    message: str


class OfferOut(BaseModel):
    """A recommended offer."""

    offer_id: str
    rank: int
    expected_incremental_value: float
    uplift: float
    conversion_probability: float
    reasons: list[ReasonOut]


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
