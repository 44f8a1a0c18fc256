"""Eligibility, suppression and arbitration: pure functions, no Flask, shared by every caller.

Ranking is by expected incremental profit, uplift x margin - cost; an offer whose expected
incremental profit is not positive is never recommended. Every offer the customer could have
been shown gets a reason: why it is shown, or why it is suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def _rule_check(offer: Offer, customer: CustomerFacts, context: DecisionContext
                ) -> Suppression | None:
    """Channel, tier and launch rules; None when the offer may be made."""
    if not offer.allows_channel(context.channel):
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"not offered on channel '{context.channel}'")
    if not offer.allows_tier(customer.loyalty_tier):
        tiers = ", ".join(offer.loyalty_tiers or ())
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"for {tiers} members only (customer: {customer.loyalty_tier})")
    launch = offer.launch
    if launch is not None:
        if not launch.is_active(context.now):
            return Suppression(offer.offer_id, NOT_ELIGIBLE, "launch window is not open")
        floor = launch.min_customer_value
        if floor is not None and customer.value < floor:
            return Suppression(
                offer.offer_id, BELOW_VALUE_THRESHOLD,
                f"customer value {customer.value:.2f} is below the launch floor {floor:.2f}",
            )
    return None


def decide(customer: CustomerFacts, scores: OfferScores, catalog: Catalog,
           context: DecisionContext, stock: StockLookup | None = None) -> Decision:
    """Rank the catalog's offers for one customer; every offer ends shown or suppressed."""
    offers = catalog.offers
    if not customer.contactable:
        return Decision((), tuple(Suppression(o.offer_id, NOT_CONTACTABLE,
                                              "customer has withdrawn consent to contact")
                                  for o in offers))
    margins = np.fromiter((o.margin for o in offers), float, len(offers))
    costs = np.fromiter((o.cost for o in offers), float, len(offers))
    value = scores.uplift * margins - costs

    suppressed: list[Suppression] = []
    candidates: list[tuple[float, int, tuple[Reason, ...]]] = []
    for k, offer in enumerate(offers):
        stock_reason: Reason | None = None
        blocked = _rule_check(offer, customer, context)
        if blocked is None:
            blocked, stock_reason = _stock_check(offer, customer, context, stock)
        if blocked is not None:
            suppressed.append(blocked)
            continue
        if np.isnan(value[k]):
            suppressed.append(Suppression(offer.offer_id, NO_MODEL,
                                          "no training data for this offer yet"))
            continue
        if value[k] <= 0:
            suppressed.append(Suppression(
                offer.offer_id, NO_INCREMENTAL_VALUE,
                f"expected incremental profit {value[k]:+.2f} (uplift "
                f"{scores.uplift[k] * 100:+.1f} pts x margin {offer.margin:.2f} - cost "
                f"{offer.cost:.2f}) is not positive",
            ))
            continue
        reasons = [Reason(
            "incremental_value",
            f"expected +{value[k]:.2f} profit: conversion {scores.p_control:.1%} -> "
            f"{scores.p_treated[k]:.1%} ({scores.uplift[k] * 100:+.1f} pts) x margin "
            f"{offer.margin:.2f} - cost {offer.cost:.2f}",
        )]
        if offer.loyalty_tiers is not None:
            reasons.append(Reason("tier_eligible", f"{customer.loyalty_tier} member"))
        if offer.launch is not None:
            reasons.append(Reason("launch", f"limited launch: {offer.launch.supply} units"))
        if stock_reason is not None:
            reasons.append(stock_reason)
        candidates.append((float(value[k]), k, tuple(reasons)))

    candidates.sort(key=lambda item: (-item[0], item[1]))
    shown = tuple(
        RankedOffer(offers[k].offer_id, rank, value_k, float(scores.uplift[k]),
                    float(scores.p_treated[k]), reasons)
        for rank, (value_k, k, reasons) in enumerate(candidates[: context.limit], start=1)
    )
    for value_k, k, _ in candidates[context.limit:]:
        suppressed.append(Suppression(offers[k].offer_id, OUTRANKED,
                                      f"expected +{value_k:.2f}, below the top {context.limit}"))
    return Decision(shown, tuple(suppressed))


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
