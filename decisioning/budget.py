"""Campaign budgets: which sends a campaign makes when it cannot make them all.

Every customer's decision ranks their offers by expected incremental profit; a campaign with a
budget (total spend: a contact cost per send plus the offer's own cost, the cost the value
formula already subtracts), a cap on sends, and per-offer quotas keeps the sends with the
highest expected incremental profit per unit of spend, greedily, until the budget, the sends or
an offer's quota run out (the greedy solution of the knapsack relaxation). Pure: arrays in,
a mask out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from decisioning.decision import Decision
from decisioning.reasons import Suppression

#: Suppression code of an offer the campaign's budget, send cap or quota left out.
BUDGET = "budget"


@dataclass(frozen=True)
class Budget:
    """A campaign's limits: total spend (None: no limit), sends (None: no limit), and the
    contact cost of one send (added to each offer's own cost)."""

    amount: float | None = None
    max_contacts: int | None = None
    contact_cost: float = 0.0


def send_spend(offer_cost: np.ndarray, budget: Budget) -> np.ndarray:
    """What each send costs the budget: the contact plus the offer's own cost."""
    return np.asarray(offer_cost, dtype=np.float64) + budget.contact_cost


def allocate(value: np.ndarray, spend: np.ndarray, offer: np.ndarray, budget: Budget,
             quotas: dict[int, int] | None = None) -> np.ndarray:
    """Which candidate sends to make: a boolean mask over the candidates.

    `value` is each send's expected incremental profit, `spend` its cost to the budget, `offer`
    its offer's index (for `quotas`: offer index -> most sends). Sends are taken by value per
    unit of spend, highest first (free sends first, by value), skipping one that no longer fits
    the remaining budget or quota; a send of no positive value is never made.
    """
    value = np.asarray(value, dtype=np.float64)
    spend = np.asarray(spend, dtype=np.float64)
    n = len(value)
    chosen = np.zeros(n, dtype=bool)
    with np.errstate(over="ignore"):  # a tiny spend makes a huge (or infinite) ratio: fine
        ratio = np.where(spend > 0, value / np.where(spend > 0, spend, 1.0), np.inf)
    order = np.lexsort((-value, -ratio))  # by ratio, then by value among equal ratios
    left = np.inf if budget.amount is None else float(budget.amount)
    sends = np.inf if budget.max_contacts is None else budget.max_contacts
    quota_left = dict(quotas or {})
    for i in order:
        if sends <= 0:
            break
        if value[i] <= 0 or spend[i] > left:
            continue
        k = int(offer[i])
        if quota_left.get(k, 1) <= 0:
            continue
        chosen[i] = True
        left -= spend[i]
        sends -= 1
        if k in quota_left:
            quota_left[k] -= 1
    return chosen


def within_budget(decision: Decision, kept: set[str], budget: Budget) -> Decision:
    """The decision with only the `kept` offers sent (re-ranked); the others are suppressed
    with reason `budget`."""
    if all(o.offer_id in kept for o in decision.offers):
        return decision
    offers = tuple(replace(o, rank=rank) for rank, o in enumerate(
        (o for o in decision.offers if o.offer_id in kept), start=1))
    details = {"budget": budget.amount, "max_contacts": budget.max_contacts}
    cut = tuple(Suppression(o.offer_id, BUDGET,
                            "the campaign's budget, send cap or the offer's quota went to sends "
                            "worth more per unit of spend", details)
                for o in decision.offers if o.offer_id not in kept)
    return replace(decision, offers=offers, suppressed=(*decision.suppressed, *cut),
                   chosen_offer=offers[0].offer_id if offers else None)
