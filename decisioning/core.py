"""The one entry function: (customer, scores, state snapshot, clock, settings) -> Decision.

Every offer the customer could have been shown ends shown or suppressed with a reason.
Order: consent; per offer, channel/tier/window rules, the decline cap, the launch floor, stock
(a sold-out offer with a fallback becomes a waiting list or pre-order); the model's value;
ranking under the contact cap; then the experiment: a held-out customer gets nothing (the
decision they would have had is kept as `chosen_offer` for the log), others may be explored.
"""

from __future__ import annotations

import random
from dataclasses import replace

from decisioning.caps import decline_check
from decisioning.decision import (
    CustomerFacts,
    Decision,
    DecisionContext,
    DecisionSettings,
    OfferScores,
)
from decisioning.eligibility import not_contactable, rule_check
from decisioning.experiment import eligible_offers, explore, held_out, in_holdout
from decisioning.launch import launch_check, launch_reason
from decisioning.ranking import Candidate, arbitrate, value_check
from decisioning.reasons import OFFER, OUT_OF_STOCK, TIER_ELIGIBLE, Reason, Suppression
from decisioning.snapshot import StateSnapshot
from decisioning.stock import fallback_reason, stock_check
from features.catalog import Catalog

#: The service's default holdout, no exploration.
NO_SETTINGS = DecisionSettings()
#: No holdout and no exploration: offline evaluation of what the rules and model choose.
OFFLINE = DecisionSettings(holdout_share=0.0)


def decide(customer: CustomerFacts, scores: OfferScores, catalog: Catalog,
           snapshot: StateSnapshot, context: DecisionContext,
           settings: DecisionSettings = NO_SETTINGS, rng: random.Random | None = None
           ) -> Decision:
    """The decision for one customer: rules, ranking, holdout and exploration.

    `snapshot` is the live state (stock None: decided without an inventory, which the decision
    says in `stock_checked`); `settings` the holdout share and salt and the exploration rate;
    `rng` draws exploration (only used when settings.exploration > 0).
    """
    ranked = rank(customer, scores, catalog, snapshot, context)
    share = settings.holdout_share
    if in_holdout(customer.customer_id, share, settings.salt):
        chosen = ranked.offers[0].offer_id if ranked.offers else None
        # P(nothing served | not held out): exploration serves something whenever it can
        p_nothing = 0.0 if chosen is not None else (
            1.0 - settings.exploration if eligible_offers(ranked) else 1.0)
        return replace(held_out(ranked, share), holdout=True,
                       propensity=share + (1 - share) * p_nothing, chosen_offer=chosen)
    served = explore(ranked, catalog, scores, settings.exploration, rng)
    decision = served.decision
    chosen = decision.offers[0].offer_id if decision.offers else None
    propensity = (1 - share) * served.propensity
    if chosen is None:  # "nothing" is also what the holdout gets
        propensity += share
    # a constructor, not dataclasses.replace: this runs once per decision on the hot path
    return Decision(decision.offers, decision.suppressed, False, served.explored, propensity,
                    chosen, decision.stock_checked)


def rank(customer: CustomerFacts, scores: OfferScores, catalog: Catalog,
         snapshot: StateSnapshot, context: DecisionContext) -> Decision:
    """Rules and ranking only, before the experiment (what the customer would be shown)."""
    offers = catalog.offers
    stock_checked = snapshot.stock is not None
    if not customer.contactable:
        return Decision((), tuple(not_contactable(o) for o in offers),
                        stock_checked=stock_checked)
    # Python floats, not NumPy scalars: a dozen offers cost less as lists than as arrays
    uplifts: list[float] = scores.uplift.tolist()
    p_treated: list[float] = scores.p_treated.tolist()
    launches, contacts, stock = snapshot.launches, snapshot.contacts, snapshot.stock
    caps = catalog.contact_policy

    suppressed: list[Suppression] = []
    candidates: list[Candidate] = []
    for k, offer in enumerate(offers):
        stock_reason: Reason | None = None
        blocked = rule_check(offer, customer, context) or decline_check(offer, caps, contacts)
        if blocked is None:
            blocked = launch_check(offer, customer, launches.get(offer.offer_id))
        if blocked is None:
            blocked, stock_reason = stock_check(offer, customer, context, stock)
        action = OFFER
        if blocked is not None and blocked.reason == OUT_OF_STOCK and offer.fallback:
            action, stock_reason, blocked = offer.fallback, fallback_reason(offer, blocked), None
        if blocked is not None:
            suppressed.append(blocked)
            continue
        value, no_value, value_reason = value_check(offer, uplifts[k], scores.p_control,
                                                    p_treated[k])
        if no_value is not None or value_reason is None:
            suppressed.append(no_value or Suppression(offer.offer_id, "", ""))
            continue
        reasons = [value_reason]
        if offer.loyalty_tiers is not None:
            reasons.append(Reason(TIER_ELIGIBLE, f"{customer.loyalty_tier} member",
                                  {"tier": customer.loyalty_tier}))
        if offer.launch is not None and action == OFFER:
            reasons.append(launch_reason(offer, customer, context,
                                         launches.get(offer.offer_id)))
        if stock_reason is not None:
            reasons.append(stock_reason)
        candidates.append(Candidate(value, k, tuple(reasons), action))

    shown, lost = arbitrate(offers, candidates, uplifts, p_treated, context, caps, contacts)
    return Decision(shown, (*suppressed, *lost), stock_checked=stock_checked)
