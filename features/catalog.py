"""The offer catalog (offers.yaml): typed, validated, immutable."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Channels a request or an offer may name. Unknown channels are rejected, not guessed.
CHANNELS: tuple[str, ...] = ("web", "app", "store", "email", "sms")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Launch(_Frozen):
    """A limited-supply launch: a fixed number of units and an optional value floor."""

    supply: int = Field(gt=0)
    min_customer_value: float | None = Field(default=None, ge=0)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    hold_seconds: int = Field(default=900, gt=0)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Launch:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def is_active(self, now: datetime) -> bool:
        """True while `now` lies inside the launch window (open ends count as open)."""
        if self.starts_at and now < self.starts_at:
            return False
        return not (self.ends_at and now > self.ends_at)


class Offer(_Frozen):
    """One offer a customer can be given; margin and cost make its profit."""

    offer_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    sku: str | None = None
    margin: float = Field(ge=0)
    cost: float = Field(default=0.0, ge=0)
    channels: tuple[str, ...] | None = None
    loyalty_tiers: tuple[str, ...] | None = None
    fallback: Literal["waitlist", "preorder"] | None = None
    launch: Launch | None = None

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = sorted(set(value or ()) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; known: {list(CHANNELS)}")
        return value

    def allows_channel(self, channel: str) -> bool:
        """True when the offer may be shown on `channel` (no list means every channel)."""
        return self.channels is None or channel in self.channels

    def allows_tier(self, tier: str | None) -> bool:
        """True when a customer of loyalty `tier` is eligible (no list means every tier)."""
        return self.loyalty_tiers is None or (tier is not None and tier in self.loyalty_tiers)


class Catalog(_Frozen):
    """The whole catalog: the control label and the offers, in file order."""

    control_label: str = Field(default="control", min_length=1)
    offers: tuple[Offer, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        seen: set[str] = set()
        for offer in self.offers:
            if offer.offer_id in seen:
                raise ValueError(f"duplicate offer_id '{offer.offer_id}'")
            if offer.offer_id == self.control_label:
                raise ValueError(f"offer_id '{offer.offer_id}' equals the control label")
            seen.add(offer.offer_id)
        return self

    @property
    def offer_ids(self) -> tuple[str, ...]:
        """Offer ids in catalog order; model outputs use this order."""
        return tuple(o.offer_id for o in self.offers)

    def get(self, offer_id: str) -> Offer | None:
        """The offer with this id, or None."""
        return next((o for o in self.offers if o.offer_id == offer_id), None)
