"""Request and response schemas: the one definition that validates requests."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from features.catalog import CHANNELS
from service.domain import DomainError

MAX_LIMIT = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidRequest(DomainError):
    """A request that breaks its schema or the rules around it (e.g. an offer not shown)."""


def printable(value: str) -> str:
    """The value, or a ValueError when it holds a control character (NUL, a newline, ...).

    PostgreSQL refuses NUL in text: let through, one would fail the state store's query, answer
    503 and count towards opening its breaker for every client. No id or name needs one.
    """
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ValueError(f"must not contain control characters (found {bad.group()!r} at "
                         f"position {bad.start()})")
    return value


#: a request string that is an id or a name: no control characters
Printable = Annotated[str, AfterValidator(printable)]
# the length inside the type, checked before `printable`: a Field(max_length=) beside an
# AfterValidator is checked after it, as a generic "Value should have at most 128 items"
Text32 = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(printable)]
Text64 = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable)]
Text128 = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable)]


def in_utc(moment: datetime) -> datetime:
    """The aware moment in UTC; ValueError when UTC has no such moment (0001-01-01T00:00+05:00).

    Pydantic accepts any aware datetime of years 1 to 9999 in its own offset; converting one at
    either end to UTC overflows, which the state store would raise inside a request (a 500).
    """
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range in UTC (years 1 to 9999)") from None


#: a request timestamp: with a time zone, held in UTC
UtcDatetime = Annotated[AwareDatetime, AfterValidator(in_utc)]


def known_channel(value: str) -> str:
    """The channel, or a ValueError listing the known ones."""
    if value not in CHANNELS:
        raise ValueError(f"unknown channel '{value}'; use one of {list(CHANNELS)}")
    return value


class DecisionContextIn(BaseModel):
    """Optional situation of the decision: what a first visit already tells."""

    model_config = ConfigDict(extra="allow")

    store_id: Text64 | None = None
    device: Literal["mobile", "tablet", "desktop", "kiosk", "other"] | None = None
    page: Text128 | None = Field(default=None,
                             description="page or category being viewed")
    # allow_inf_nan: NaN fails every comparison, so the bounds alone said "<= 10000000" for it
    cart_value: float | None = Field(default=None, ge=0, le=1e7, allow_inf_nan=False)


class _DecisionOptions(BaseModel):
    """What every decision request says besides who: channel, how many offers, context."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(json_schema_extra={"enum": list(CHANNELS)}, examples=["web"])
    limit: int = Field(default=3, ge=1, le=MAX_LIMIT)
    context: DecisionContextIn = Field(default_factory=DecisionContextIn)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        return known_channel(value)

    @field_validator("limit", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        # pydantic's lax mode reads true as 1 and "3" as 3: a client sending either had a
        # bug the answer hid ({"limit": true} silently got one offer)
        if isinstance(value, bool | str):
            kind = "true/false" if isinstance(value, bool) else "a string"
            raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}, not {kind}")
        return value


class DecisionRequest(_DecisionOptions):
    """POST /v1/decisions body: a customer_id, or a session_id for an anonymous visitor."""

    customer_id: Text128 | None = Field(default=None,
                                    examples=["C0000001"])
    session_id: Text128 | None = Field(default=None,
                                   description="an anonymous visitor's session (no customer_id)")

    @model_validator(mode="after")
    def _who(self) -> DecisionRequest:
        if (self.customer_id is None) == (self.session_id is None):
            raise ValueError("give exactly one of customer_id (a customer) or session_id "
                             "(an anonymous visitor)")
        return self


MAX_INVENTORY_ROWS = 10_000
OUTCOME_EVENTS = ("shown", "accepted", "declined", "purchased")


class InventoryRowIn(BaseModel):
    """One row of the inventory data contract."""

    model_config = ConfigDict(extra="forbid")

    sku: Text128
    size: Text32 | None = None
    color: Text64 | None = None
    location: Text64 | None = None
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

    decision_id: Text64
    offer_id: Text128 | None = None
    event: Literal["shown", "accepted", "declined", "purchased"]
    revenue: float = Field(default=0.0, ge=0, le=1e9, allow_inf_nan=False)


MAX_BATCH = 1_000


class BatchDecisionRequest(_DecisionOptions):
    """POST /v1/decisions:batch body: one channel and context for up to 1,000 customers."""

    customer_ids: list[Text128] = Field(
        min_length=1, max_length=MAX_BATCH, examples=[["C0000001", "C0000002"]])


class ReasonOut(BaseModel):
    """Why an offer is shown: a code, a sentence, and its facts as data (render from these)."""

    code: str
    message: str
    #: units left, location, floor, customer value, cap window...: by code (docs/api.md)
    details: dict[str, Any] = Field(default_factory=dict)


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
    reservation: ReservationOut | None


class SuppressedOut(BaseModel):
    """A suppressed offer."""

    offer_id: str
    reason: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ModelRef(BaseModel):
    """Which registered model version decided."""

    name: str
    version: str


class DecisionResponse(BaseModel):
    """POST /v1/decisions response."""

    decision_id: str
    customer_id: str = Field(description='the customer id, or "session:<session_id>"')
    customer_known: bool = Field(description="false: no profile (an unknown id or an "
                                             "anonymous session), decided from the offers "
                                             "for new customers")
    customer_known_reason: str | None = None
    model: ModelRef
    holdout: bool
    explored: bool
    #: false when decided without an inventory snapshot (offers not checked against stock)
    stock_checked: bool = True
    offers: list[OfferOut]
    suppressed: list[SuppressedOut]


class ErrorDetail(BaseModel):
    """The one error shape's inner object."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: {"error": {code, message, details}}."""

    error: ErrorDetail


class BatchItemError(BaseModel):
    """A customer of a batch that could not be decided (the others still are)."""

    customer_id: str
    error: ErrorDetail


class BatchDecisionResponse(BaseModel):
    """POST /v1/decisions:batch response: one entry per requested customer, in order."""

    decisions: list[DecisionResponse | BatchItemError]


class InventoryUpdateResponse(BaseModel):
    """PUT /v1/inventory response."""

    updated: int
    inventory_version: int


class ReservationStatusOut(BaseModel):
    """A launch hold after an outcome."""

    reservation_id: str
    status: str


class OutcomeResponse(BaseModel):
    """POST /v1/outcomes response; `recorded` false when the same event was already recorded."""

    decision_id: str
    offer_id: str | None
    event: str
    recorded: bool
    reservation: ReservationStatusOut | None


class ModelInfo(BaseModel):
    """GET /v1/model response."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    alias: str
    run_id: str | None
    metrics: dict[str, float]
    customers: int
    loaded_at: float
    worker_pid: int
    last_reload_error: dict[str, Any] | None


class HealthResponse(BaseModel):
    """GET /healthz response."""

    status: Literal["ok"]


class ReadyResponse(BaseModel):
    """GET /readyz 200 response (the 503 is an ErrorResponse with code model_not_ready)."""

    status: Literal["ready"]
    model: ModelRef


class ReloadResponse(BaseModel):
    """POST /v1/admin/reload response."""

    status: Literal["reloaded", "unchanged"]
    version: str | None
    previous_version: str | None
    worker_pid: int


MAX_EVENTS = 1_000


class CustomerEventIn(BaseModel):
    """One customer event: a purchase or return (amount), a consent change, a sign-up."""

    model_config = ConfigDict(extra="forbid")

    event_id: Text128 = Field(examples=["ev-000123"])
    customer_id: Text128 = Field(examples=["C0000001"])
    type: Literal["purchase", "return", "consent", "sign_up"]
    occurred_at: UtcDatetime = Field(description="when it happened (with a time zone); "
                                                   "events may arrive late and out of order")
    amount: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False,
                                 description="order value (purchase, return)")
    contactable: bool | None = Field(default=None, description="the new consent (consent)")
    channel: Text32 | None = None
    loyalty_tier: Text32 | None = None
    preferred_size: Text32 | None = None
    preferred_color: Text64 | None = None
    loyalty_card: Text64 | None = Field(default=None,
                                     description="the card number given at sign-up")

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> CustomerEventIn:
        if self.type in ("purchase", "return") and self.amount is None:
            raise ValueError(f"a {self.type} event needs `amount`")
        if self.type == "consent" and self.contactable is None:
            raise ValueError("a consent event needs `contactable` (true or false)")
        return self


class EventBatch(BaseModel):
    """POST /v1/events body: up to 1,000 events, applied in order in one transaction."""

    model_config = ConfigDict(extra="forbid")

    events: list[CustomerEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventResultOut(BaseModel):
    """What happened to one event: applied now, or a duplicate of one already applied."""

    event_id: str
    status: Literal["applied", "duplicate"]


class EventBatchResponse(BaseModel):
    """POST /v1/events answer."""

    applied: int
    duplicates: int
    results: list[EventResultOut]
