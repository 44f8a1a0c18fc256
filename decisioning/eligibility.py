"""Who may get an offer at all: consent, channel, loyalty tier and the launch window."""

from __future__ import annotations

import numpy as np

from decisioning.decision import CustomerFacts, DecisionContext
from decisioning.reasons import NOT_CONTACTABLE, NOT_ELIGIBLE, Suppression
from features.catalog import Catalog, Offer


def not_contactable(offer: Offer) -> Suppression:
    """The suppression of every offer for a customer who withdrew consent."""
    return Suppression(offer.offer_id, NOT_CONTACTABLE, "customer has withdrawn consent to contact")


def rule_check(offer: Offer, customer: CustomerFacts, context: DecisionContext
               ) -> Suppression | None:
    """Channel, tier and launch-window rules; None when the offer may be made."""
    if not offer.allows_channel(context.channel):
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"not offered on channel '{context.channel}'",
                           {"rule": "channel", "channel": context.channel})
    if not offer.allows_tier(customer.loyalty_tier):
        tiers = ", ".join(offer.loyalty_tiers or ())
        return Suppression(offer.offer_id, NOT_ELIGIBLE,
                           f"for {tiers} members only (customer: {customer.loyalty_tier})",
                           {"rule": "tier", "tiers": list(offer.loyalty_tiers or ()),
                            "customer_tier": customer.loyalty_tier})
    launch = offer.launch
    if launch is not None and not launch.is_active(context.now, customer.loyalty_tier):
        opens = launch.opens_at(customer.loyalty_tier)
        not_yet = opens is not None and context.now < opens
        when = f"opens {opens.isoformat()}" if not_yet and opens else "window has closed"
        return Suppression(offer.offer_id, NOT_ELIGIBLE, f"launch {when}",
                           {"rule": "launch_window",
                            "opens_at": opens.isoformat() if not_yet and opens else None,
                            "closed": not not_yet})
    return None


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
