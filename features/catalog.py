"""The offer catalog (offers.yaml): typed, validated, immutable."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Channels a request or an offer may name. Unknown channels are rejected, not guessed.
CHANNELS: tuple[str, ...] = ("web", "app", "store", "email", "sms")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EarlyAccess(_Frozen):
    """Loyal tiers may ask before everyone else: from `starts_at` instead of the launch start."""

    tiers: tuple[str, ...] = Field(min_length=1)
    starts_at: datetime


class Launch(_Frozen):
    """A limited-supply launch: a fixed number of units and a value floor (fixed or derived).

    Without `min_customer_value` the floor is derived from the remaining supply and the value
    distribution of eligible customers (decisioning.launch.value_floor); `expected_reach` is the
    share of eligible customers expected to ask during the window, and `arrival_shape` when they
    ask: by the share t of the window, t ** arrival_shape of them have asked (1: steadily;
    0.25: front-loaded, half in the first 6%; above 1: late). A recommended unit is held for
    `hold_seconds` until the customer accepts (confirmed) or declines (released).
    """

    supply: int = Field(gt=0)
    min_customer_value: float | None = Field(default=None, ge=0)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    hold_seconds: int = Field(default=900, gt=0)
    expected_reach: float = Field(default=0.4, gt=0, le=1)
    arrival_shape: float = Field(default=1.0, ge=0.05, le=20)
    early_access: EarlyAccess | None = None

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Launch:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        early = self.early_access
        if early and self.starts_at and early.starts_at > self.starts_at:
            raise ValueError("early_access.starts_at must not be after starts_at")
        return self

    def opens_at(self, tier: str | None) -> datetime | None:
        """When a customer of `tier` may first ask: early for the early-access tiers."""
        early = self.early_access
        if early is not None and tier is not None and tier in early.tiers:
            return early.starts_at
        return self.starts_at

    def is_active(self, now: datetime, tier: str | None = None) -> bool:
        """True while `now` lies inside the launch window for a customer of `tier`."""
        opens = self.opens_at(tier)
        if opens and now < opens:
            return False
        return not (self.ends_at and now > self.ends_at)


class ContactPolicy(_Frozen):
    """Catalog-wide contact caps, kept in the state store so they hold across workers and hosts.

    At most `max_offers` offers per customer per channel within `window_hours`; after
    `max_declines` declines of one offer within `decline_days`, that offer is not made again
    until the declines age out of that window.
    """

    max_offers: int = Field(default=3, gt=0)
    window_hours: float = Field(default=24.0, gt=0)
    max_declines: int = Field(default=2, gt=0)
    decline_days: float = Field(default=30.0, gt=0)


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
    #: most sends of this offer in one budgeted campaign (`nba batch-score --budget`)
    quota: int | None = Field(default=None, ge=0)
    #: "new": only for customers without a profile (unknown ids, anonymous sessions), decided
    #: by `prior_uplift` since no model has seen them; "all": the modelled catalog
    audience: Literal["all", "new"] = "all"
    #: the conversion uplift assumed for an `audience: new` offer (its expected profit is
    #: prior_uplift x margin - cost)
    prior_uplift: float | None = Field(default=None, ge=-1, le=1)

    @model_validator(mode="after")
    def _new_customer_offers_have_a_prior(self) -> Offer:
        if self.audience == "new" and self.prior_uplift is None:
            raise ValueError(f"offer '{self.offer_id}' is for new customers: it needs "
                             "prior_uplift (no model has seen it)")
        if self.audience == "new" and self.launch is not None:
            raise ValueError(f"offer '{self.offer_id}': a launch cannot be for new customers "
                             "only (its value floor needs a customer value)")
        return self

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
    contact_policy: ContactPolicy | None = None
    #: the `audience: new` offers of offers.yaml, kept apart: the models and the decisions
    #: of known customers never see them (see `for_new_customers`)
    new_customer_offers: tuple[Offer, ...] = ()
    #: the conversion assumed for a customer without a profile, before any offer
    new_customer_conversion: float = Field(default=0.02, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _split_audiences(cls, data: object) -> object:
        """`audience: new` offers written among `offers` move to `new_customer_offers`."""
        if isinstance(data, dict) and isinstance(data.get("offers"), list | tuple):
            def is_new(offer: object) -> bool:
                audience = (offer.get("audience") if isinstance(offer, dict)
                            else getattr(offer, "audience", None))
                return audience == "new"

            offers = list(data["offers"])
            data = {**data, "offers": [o for o in offers if not is_new(o)],
                    "new_customer_offers": [*data.get("new_customer_offers", ()),
                                            *(o for o in offers if is_new(o))]}
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        seen: set[str] = set()
        for offer in (*self.offers, *self.new_customer_offers):
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
        """The offer with this id (of either audience), or None."""
        return next((o for o in (*self.offers, *self.new_customer_offers)
                     if o.offer_id == offer_id), None)

    def for_new_customers(self) -> Catalog | None:
        """The catalog a customer without a profile is decided from (None: it has no offers)."""
        if not self.new_customer_offers:
            return None
        # a copy, not a validation: validating would move these offers out of `offers` again
        return self.model_copy(update={"offers": self.new_customer_offers,
                                       "new_customer_offers": ()})
