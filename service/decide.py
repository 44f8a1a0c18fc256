"""Eligibility, suppression and arbitration: pure functions, no Flask, shared by every caller.

Ranking is by expected incremental profit, uplift x margin - cost; an offer whose expected
incremental profit is not positive is never recommended. Every offer the customer could have
been shown gets a reason: why it is shown, or why it is suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from features.catalog import Catalog, Offer

# Suppression reason codes: stable API values.
NOT_CONTACTABLE = "not_contactable"
NOT_ELIGIBLE = "not_eligible"
BELOW_VALUE_THRESHOLD = "below_value_threshold"
OUT_OF_STOCK = "out_of_stock"
NO_MODEL = "no_model"
NO_INCREMENTAL_VALUE = "no_incremental_value"
OUTRANKED = "outranked"
CONTACT_CAP = "contact_cap"

# What a shown offer asks the customer to do: take it now, or join the re-stock list / pre-order.
OFFER = "offer"
WAITLIST = "waitlist"
PREORDER = "preorder"


@dataclass(frozen=True)
class Reason:
    """Why an offer is shown: a stable code and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True)
class CustomerFacts:
    """What the rules need to know about one customer (besides the model's scores)."""

    customer_id: str
    contactable: bool = True
    loyalty_tier: str | None = None
    preferred_size: str | None = None
    preferred_color: str | None = None
    value: float = 0.0


@dataclass(frozen=True)
class DecisionContext:
    """Where and when the decision is made."""

    channel: str
    now: datetime
    limit: int = 3
    store_id: str | None = None


@dataclass(frozen=True)
class OfferScores:
    """Model outputs for one customer, aligned with catalog.offers (NaN = no estimate)."""

    uplift: np.ndarray
    p_treated: np.ndarray
    p_control: float


@dataclass(frozen=True)
class RankedOffer:
    """An offer worth making, with its expected incremental value."""

    offer_id: str
    rank: int
    expected_incremental_value: float
    uplift: float
    conversion_probability: float
    reasons: tuple[Reason, ...]
    action: str = OFFER


@dataclass(frozen=True)
class Suppression:
    """An offer not made, and why."""

    offer_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The ranked offers and every suppression, for one customer."""

    offers: tuple[RankedOffer, ...]
    suppressed: tuple[Suppression, ...]


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


class StockLookup(Protocol):
    """Units on hand for a SKU matching a size/colour at a location (None = online)."""

    def units(self, sku: str, size: str | None, color: str | None,
              location: str | None) -> int: ...


def _variant(customer: CustomerFacts) -> str:
    parts = [f"size {customer.preferred_size}" if customer.preferred_size else "",
             customer.preferred_color or ""]
    return " ".join(p for p in parts if p) or "any variant"


def _stock_check(offer: Offer, customer: CustomerFacts, context: DecisionContext,
                 stock: StockLookup | None) -> tuple[Suppression | None, Reason | None]:
    """Out-of-stock suppression, or a reason naming the stock that backs the offer."""
    if offer.sku is None or stock is None:
        return None, None
    size, color = customer.preferred_size, customer.preferred_color
    in_store = context.channel == "store" and context.store_id is not None
    where = context.store_id if in_store else None
    units = stock.units(offer.sku, size, color, where)
    # name the customer's size/colour only when the SKU has other variants in stock
    any_variant = units or stock.units(offer.sku, None, None, where)
    variant = _variant(customer) if any_variant else offer.sku
    if units > 0:
        place = f"in {context.store_id}" if in_store else "online"
        return None, Reason("in_stock", f"{units} left {place} for {variant}")
    if in_store:
        online = stock.units(offer.sku, size, color, None)
        extra = f"; {online} online" if online else "; none online either"
        message = f"{variant} sold out in {context.store_id}{extra}"
    else:
        message = f"{variant} sold out online"
    return Suppression(offer.offer_id, OUT_OF_STOCK, message), None


def _rule_check(offer: Offer, customer: CustomerFacts, context: DecisionContext,
                catalog: Catalog, contacts: ContactHistory | None) -> Suppression | None:
    """Channel, tier, decline-cap and launch-window rules; None when the offer may be made."""
    if not offer.allows_channel(context.channel):
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"not offered on channel '{context.channel}'")
    if not offer.allows_tier(customer.loyalty_tier):
        tiers = ", ".join(offer.loyalty_tiers or ())
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"for {tiers} members only (customer: {customer.loyalty_tier})")
    caps = catalog.contact_policy
    if caps is not None and contacts is not None:
        declined = contacts.declines.get(offer.offer_id, 0)
        if declined >= caps.max_declines:
            return Suppression(offer.offer_id, CONTACT_CAP,
                               f"declined {declined} times in the last {caps.decline_days:g} "
                               f"days (cap {caps.max_declines})")
    launch = offer.launch
    if launch is not None and not launch.is_active(context.now, customer.loyalty_tier):
        opens = launch.opens_at(customer.loyalty_tier)
        when = (f"opens {opens.isoformat()}" if opens and context.now < opens
                else "window has closed")
        return Suppression(offer.offer_id, NOT_ELIGIBLE, f"launch {when}")
    return None


def _launch_check(offer: Offer, customer: CustomerFacts, status: LaunchStatus | None
                  ) -> Suppression | None:
    """The launch's value floor (fixed, or derived from what is left) and its sell-out."""
    launch = offer.launch
    if launch is None:
        return None
    fixed = launch.min_customer_value
    floor = fixed if fixed is not None else (status.floor if status is not None else 0.0)
    left = (f" ({status.remaining} of {launch.supply} units left)"
            if status is not None else "")
    if status is not None and status.remaining <= 0:
        return Suppression(offer.offer_id, OUT_OF_STOCK,
                           f"launch sold out: all {launch.supply} units are held or sold")
    if customer.value < floor:
        kind = "launch floor" if fixed is not None else "current launch floor"
        return Suppression(offer.offer_id, BELOW_VALUE_THRESHOLD,
                           f"customer value {customer.value:.2f} is below the {kind} "
                           f"{floor:.2f}{left}")
    return None


def _fallback_reason(offer: Offer, sold_out: Suppression) -> Reason:
    """The reason a sold-out offer is replaced by its re-stock waiting list or pre-order."""
    if offer.fallback == WAITLIST:
        return Reason(WAITLIST, f"{sold_out.message}: join the re-stock waiting list")
    return Reason(PREORDER, f"{sold_out.message}: offer a pre-order")


def decide(customer: CustomerFacts, scores: OfferScores, catalog: Catalog,
           context: DecisionContext, stock: StockLookup | None = None,
           launches: Mapping[str, LaunchStatus] | None = None,
           contacts: ContactHistory | None = None) -> Decision:
    """Rank the catalog's offers for one customer; every offer ends shown or suppressed.

    `launches` (offer_id -> live status) and `contacts` come from the state store; without
    them (offline evaluation) only fixed floors apply and no cap is counted.
    """
    offers = catalog.offers
    if not customer.contactable:
        return Decision((), tuple(Suppression(o.offer_id, NOT_CONTACTABLE,
                                              "customer has withdrawn consent to contact")
                                  for o in offers))
    # Python floats, not NumPy scalars: a dozen offers cost less as lists than as arrays
    uplifts: list[float] = scores.uplift.tolist()
    p_treated: list[float] = scores.p_treated.tolist()
    launches = launches or {}

    suppressed: list[Suppression] = []
    candidates: list[tuple[float, int, tuple[Reason, ...], str]] = []
    for k, offer in enumerate(offers):
        stock_reason: Reason | None = None
        blocked = _rule_check(offer, customer, context, catalog, contacts)
        if blocked is None:
            blocked = _launch_check(offer, customer, launches.get(offer.offer_id))
        if blocked is None:
            blocked, stock_reason = _stock_check(offer, customer, context, stock)
        action = OFFER
        if blocked is not None and blocked.reason == OUT_OF_STOCK and offer.fallback:
            action, stock_reason, blocked = offer.fallback, _fallback_reason(offer, blocked), None
        if blocked is not None:
            suppressed.append(blocked)
            continue
        uplift = uplifts[k]
        if math.isnan(uplift):
            suppressed.append(Suppression(offer.offer_id, NO_MODEL,
                                          "no training data for this offer yet"))
            continue
        value = uplift * offer.margin - offer.cost
        if value <= 0:
            suppressed.append(Suppression(
                offer.offer_id, NO_INCREMENTAL_VALUE,
                f"expected incremental profit {value:+.2f} (uplift "
                f"{uplift * 100:+.1f} pts x margin {offer.margin:.2f} - cost "
                f"{offer.cost:.2f}) is not positive",
            ))
            continue
        reasons = [Reason(
            "incremental_value",
            f"expected +{value:.2f} profit: conversion {scores.p_control:.1%} -> "
            f"{p_treated[k]:.1%} ({uplift * 100:+.1f} pts) x margin "
            f"{offer.margin:.2f} - cost {offer.cost:.2f}",
        )]
        if offer.loyalty_tiers is not None:
            reasons.append(Reason("tier_eligible", f"{customer.loyalty_tier} member"))
        if offer.launch is not None and action == OFFER:
            reasons.append(_launch_reason(offer, customer, context,
                                          launches.get(offer.offer_id)))
        if stock_reason is not None:
            reasons.append(stock_reason)
        candidates.append((value, k, tuple(reasons), action))

    candidates.sort(key=lambda item: (-item[0], item[1]))
    limit = context.limit
    caps = catalog.contact_policy
    allowed = limit
    if caps is not None and contacts is not None:
        allowed = max(0, min(limit, caps.max_offers - contacts.offers_in_window))
    shown = tuple(
        RankedOffer(offers[k].offer_id, rank, value_k, uplifts[k], p_treated[k], reasons,
                    action)
        for rank, (value_k, k, reasons, action) in enumerate(candidates[:allowed], start=1)
    )
    for i, (value_k, k, _, _) in enumerate(candidates[allowed:], start=allowed):
        if i < limit and caps is not None and contacts is not None:
            suppressed.append(Suppression(
                offers[k].offer_id, CONTACT_CAP,
                f"{contacts.offers_in_window} offers already made on {context.channel} in the "
                f"last {caps.window_hours:g} h (cap {caps.max_offers})"))
        else:
            suppressed.append(Suppression(offers[k].offer_id, OUTRANKED,
                                          f"expected +{value_k:.2f}, below the top {limit}"))
    return Decision(shown, tuple(suppressed))


def _launch_reason(offer: Offer, customer: CustomerFacts, context: DecisionContext,
                   status: LaunchStatus | None) -> Reason:
    """Why a launch unit goes to this customer: units left, floor met, early access."""
    launch = offer.launch
    assert launch is not None
    parts = [f"limited launch: {launch.supply} units"]
    if status is not None:
        parts = [f"limited launch: {status.remaining} of {launch.supply} units left"]
        floor = launch.min_customer_value if launch.min_customer_value is not None \
            else status.floor
        if floor > 0:
            parts.append(f"customer value {customer.value:.2f} meets the floor {floor:.2f}")
    early = launch.early_access
    if (early is not None and customer.loyalty_tier in early.tiers and launch.starts_at
            and context.now < launch.starts_at):
        parts.append(f"{customer.loyalty_tier} early access")
    return Reason("launch", "; ".join(parts))


def tier_eligibility(catalog: Catalog, tiers: np.ndarray | None) -> np.ndarray:
    """(n_rows, n_offers) mask of offers each loyalty tier may receive (for offline evaluation)."""
    n = 1 if tiers is None else len(tiers)
    mask = np.ones((n, len(catalog.offers)), dtype=bool)
    if tiers is None:
        return mask
    for k, offer in enumerate(catalog.offers):
        if offer.loyalty_tiers is not None:
            mask[:, k] = np.isin(tiers, offer.loyalty_tiers)
    return mask
