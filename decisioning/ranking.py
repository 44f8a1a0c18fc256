"""Ranking by expected incremental profit, uplift x margin - cost, and the contact cap's cut.

An offer whose expected incremental profit is not positive is never recommended.
"""

from __future__ import annotations

from dataclasses import dataclass

from decisioning import caps as c
from decisioning.decision import DecisionContext, RankedOffer
from decisioning.reasons import (
    INCREMENTAL_VALUE,
    NO_INCREMENTAL_VALUE,
    NO_MODEL,
    OUTRANKED,
    Reason,
    Suppression,
)
from decisioning.snapshot import ContactHistory
from features.catalog import ContactPolicy, Offer


@dataclass(frozen=True, slots=True)
class Candidate:
    """An offer that passed every rule, with its value: what ranking orders."""

    value: float
    index: int  # position in the catalog: ties go to the earlier offer
    reasons: tuple[Reason, ...]
    action: str


def value_check(offer: Offer, uplift: float, p_control: float, p_treated: float
                ) -> tuple[float, Suppression | None, Reason | None]:
    """The offer's expected incremental profit, and its suppression or its value reason."""
    if uplift != uplift:  # NaN: no estimate
        return 0.0, Suppression(offer.offer_id, NO_MODEL, "no training data for this offer yet",
                                {}), None
    value = uplift * offer.margin - offer.cost
    # unrounded: rounding a dozen offers' details costs more than the rest of the check
    details = {"value": value, "uplift": uplift, "p_control": p_control,
               "p_treated": p_treated, "margin": offer.margin, "cost": offer.cost}
    if value <= 0:
        return value, Suppression(
            offer.offer_id, NO_INCREMENTAL_VALUE,
            f"expected incremental profit {value:+.2f} (uplift {uplift * 100:+.1f} pts x "
            f"margin {offer.margin:.2f} - cost {offer.cost:.2f}) is not positive", details), None
    return value, None, Reason(
        INCREMENTAL_VALUE,
        f"expected +{value:.2f} profit: conversion {p_control:.1%} -> {p_treated:.1%} "
        f"({uplift * 100:+.1f} pts) x margin {offer.margin:.2f} - cost {offer.cost:.2f}",
        details)


def arbitrate(offers: tuple[Offer, ...], candidates: list[Candidate], uplifts: list[float],
              p_treated: list[float], context: DecisionContext, caps: ContactPolicy | None,
              contacts: ContactHistory | None
              ) -> tuple[tuple[RankedOffer, ...], list[Suppression]]:
    """The top `limit` candidates (fewer when the contact cap says so), and why the rest lost."""
    candidates.sort(key=lambda item: (-item.value, item.index))
    limit = context.limit
    allowed = c.offers_allowed(limit, caps, contacts)
    shown = tuple(
        RankedOffer(offers[x.index].offer_id, rank, x.value, uplifts[x.index],
                    p_treated[x.index], x.reasons, x.action)
        for rank, x in enumerate(candidates[:allowed], start=1))
    suppressed: list[Suppression] = []
    for i, x in enumerate(candidates[allowed:], start=allowed):
        offer_id = offers[x.index].offer_id
        if i < limit and caps is not None and contacts is not None:
            suppressed.append(c.capped(offer_id, caps, contacts, context))
        else:
            suppressed.append(Suppression(offer_id, OUTRANKED,
                                          f"expected +{x.value:.2f}, below the top {limit}",
                                          {"value": x.value, "limit": limit}))
    return shown, suppressed
