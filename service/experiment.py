"""Holdouts and exploration: the randomization that makes the log causal. Pure functions.

The global holdout is a deterministic hash of (salt, customer id), stratified by customer value:
within each value stratum the customers with the lowest hash values are held out, so holdout and
treated groups are the same population and a customer stays in their group across requests,
workers, hosts and model versions (for one customer table and salt). Exploration serves a random
eligible offer instead of the best one with a small probability; the probability with which the
served offer was chosen (the logging propensity) is recorded with every decision.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

import numpy as np

from features.catalog import Catalog
from service.decide import (
    NO_INCREMENTAL_VALUE,
    OFFER,
    OUTRANKED,
    Decision,
    OfferScores,
    RankedOffer,
    Reason,
    Suppression,
)

HOLDOUT = "holdout"
EXPLORATION = "exploration"
VALUE_STRATA = 10


def hash_unit(salt: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by the salt and the customer id (no process state)."""
    digest = hashlib.blake2b(f"{salt}\x00{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def holdout_mask(ids: list[str], values: np.ndarray, share: float, salt: str,
                 strata: int = VALUE_STRATA) -> np.ndarray:
    """Which customers are in the global holdout: `share` of each customer-value stratum."""
    n = len(ids)
    mask = np.zeros(n, dtype=bool)
    if n == 0 or share <= 0:
        return mask
    units = np.fromiter((hash_unit(salt, cid) for cid in ids), float, n)
    order = np.argsort(values, kind="stable")
    for stratum in np.array_split(order, min(strata, n)):
        take = int(round(share * len(stratum)))
        if take:
            mask[stratum[np.argsort(units[stratum], kind="stable")[:take]]] = True
    return mask


@dataclass(frozen=True)
class Served:
    """A decision as served: maybe explored, with the logging propensity of what was served."""

    decision: Decision
    explored: bool
    #: P(this top offer, or nothing, was served | the customer is not held out)
    propensity: float


def eligible_offers(decision: Decision) -> list[str]:
    """Offers that passed every rule (shown, or only outranked / not worth it by the model)."""
    return [o.offer_id for o in decision.offers if o.action == OFFER] + [
        s.offer_id for s in decision.suppressed if s.reason in (OUTRANKED, NO_INCREMENTAL_VALUE)]


def explore(decision: Decision, catalog: Catalog, scores: OfferScores, share: float,
            rng: random.Random) -> Served:
    """With probability `share`, put a uniformly random eligible offer first.

    The propensity of the top served offer is (1 - share) * [it is the best] + share / n for n
    eligible offers; when nothing is served it is the probability of serving nothing.
    """
    eligible = eligible_offers(decision)
    best = decision.offers[0].offer_id if decision.offers else None
    if not eligible or share <= 0:
        return Served(decision, False, 1.0)
    drawn = eligible[rng.randrange(len(eligible))] if rng.random() < share else None
    explored = drawn is not None and drawn != best
    top = drawn if drawn is not None else best
    p_top = (1.0 - share) * (top == best) + share / len(eligible)
    if best is None and not explored:
        return Served(decision, False, 1.0 - share)
    if drawn is None or not explored:
        return Served(decision, False, p_top)
    return Served(_promote(decision, catalog, scores, drawn), True, p_top)


def _promote(decision: Decision, catalog: Catalog, scores: OfferScores,
             offer_id: str) -> Decision:
    """The decision with `offer_id` served first (explored), the rest ranked behind it."""
    k = catalog.offer_ids.index(offer_id)
    offer = catalog.offers[k]
    existing = next((o for o in decision.offers if o.offer_id == offer_id), None)
    reason = Reason(EXPLORATION, "served at random to learn what it adds (exploration)")
    if existing is None:
        value = float(scores.uplift[k] * offer.margin - offer.cost)
        existing = RankedOffer(offer_id, 1, value, float(scores.uplift[k]),
                               float(scores.p_treated[k]), ())
    first = replace(existing, rank=1, reasons=(reason, *existing.reasons))
    rest = [o for o in decision.offers if o.offer_id != offer_id]
    limit = max(len(decision.offers), 1)
    kept = rest[: limit - 1]
    dropped = rest[limit - 1:]
    offers = (first, *(replace(o, rank=i) for i, o in enumerate(kept, start=2)))
    suppressed = [s for s in decision.suppressed if s.offer_id != offer_id]
    suppressed += [Suppression(o.offer_id, OUTRANKED, "moved out by an exploration offer")
                   for o in dropped]
    return Decision(offers, tuple(suppressed))


def held_out(decision: Decision, share: float) -> Decision:
    """The holdout's decision: nothing served, every offer suppressed with the reason."""
    message = (f"customer is in the {share:.0%} global holdout, which gets no offer so that "
               "what offers add can be measured")
    every = [o.offer_id for o in decision.offers] + [s.offer_id for s in decision.suppressed]
    return Decision((), tuple(Suppression(offer_id, HOLDOUT, message) for offer_id in every))
