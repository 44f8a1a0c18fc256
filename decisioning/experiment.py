"""Holdouts and exploration: the randomization that makes the log causal.

The global holdout is a salted hash of the customer id: a customer is held out when
hash_unit(salt, id) < share. It needs nothing but the id, so every path that decides for one
customer (the service, a batch chunk, `nba decide`, the pyfunc on any frame) puts them in the
same group, across workers, hosts and model versions. The hash is independent of everything
about the customer, so within every customer-value stratum the expected held-out share is
`share` (the reports' balance check measures it). Exploration serves a random eligible offer
instead of the best one with a small probability; the probability with which the served offer
was chosen (the logging propensity) is recorded with every decision.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace

import numpy as np

from decisioning.decision import Decision, OfferScores, RankedOffer
from decisioning.reasons import (
    EXPLORATION,
    HOLDOUT,
    NO_INCREMENTAL_VALUE,
    OFFER,
    OUTRANKED,
    Reason,
    Suppression,
)
from features.catalog import Catalog


def hash_unit(salt: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by the salt and the customer id (no process state)."""
    digest = hashlib.blake2b(f"{salt}\x00{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def in_holdout(customer_id: str, share: float, salt: str) -> bool:
    """Whether the customer is in the global holdout of `share` under `salt`."""
    return share > 0 and hash_unit(salt, customer_id) < share


def holdout_of(ids: list[str], share: float, salt: str) -> np.ndarray:
    """`in_holdout` for many customers (a boolean array in the order of `ids`)."""
    return np.fromiter((in_holdout(cid, share, salt) for cid in ids), bool, len(ids))


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
            rng: random.Random | None) -> Served:
    """With probability `share`, put a uniformly random eligible offer first.

    The propensity of the top served offer is (1 - share) * [it is the best] + share / n for n
    eligible offers; when nothing is served it is the probability of serving nothing.
    """
    if share <= 0:
        return Served(decision, False, 1.0)
    eligible = eligible_offers(decision)
    best = decision.offers[0].offer_id if decision.offers else None
    if not eligible:
        return Served(decision, False, 1.0)
    rng = rng or random.Random()
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
    suppressed += [Suppression(o.offer_id, OUTRANKED, "moved out by an exploration offer",
                               {"explored_offer": offer_id})
                   for o in dropped]
    return replace(decision, offers=offers, suppressed=tuple(suppressed))


def held_out(decision: Decision, share: float) -> Decision:
    """The holdout's decision: nothing served, every offer suppressed with the reason."""
    message = (f"customer is in the {share:.0%} global holdout, which gets no offer so that "
               "what offers add can be measured")
    details = {"share": share}
    every = [o.offer_id for o in decision.offers] + [s.offer_id for s in decision.suppressed]
    return replace(decision, offers=(), suppressed=tuple(
        Suppression(offer_id, HOLDOUT, message, details) for offer_id in every))
