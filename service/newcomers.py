"""Decisions for customers without a profile: unknown ids and anonymous sessions. Pure.

No model has seen these customers. When the training data held exposures of new customers,
the policy carries a first-visit policy (training.first_visit) that scores the catalog's offers
for new customers (`audience: new` in offers.yaml, e.g. a first-purchase gift and a consent
prompt) from the request's context; otherwise each offer is scored by its `prior_uplift` over
the catalog's `new_customer_conversion`. Either way the very same decision core decides
(`decisioning.core.decide`): eligibility by channel, stock in the request's store, contact
caps, ranking by expected incremental profit, reasons, and the same experiment as known
customers: the global holdout (a salted hash of the session id or card number the visitor is
decided under) and exploration, with the logging propensity of what was served. Their log is
then randomized like any other, so `nba export-training` yields control rows and propensities
a first-visit policy can learn from.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from decisioning.core import NO_SETTINGS, decide
from decisioning.decision import (
    CustomerFacts,
    Decision,
    DecisionContext,
    DecisionSettings,
    OfferScores,
)
from decisioning.snapshot import StateSnapshot
from features.catalog import Catalog
from features.customers import CustomerTable

if TYPE_CHECKING:
    from training.package import Policy

#: why a decision was made without a profile (the answer's `customer_known_reason`): who...
UNKNOWN_ID = "no profile for this customer_id"
ANONYMOUS = "anonymous session"
#: ...and by which policy
BY_PRIORS = ": decided from the offers for new customers by their prior uplift"
BY_FIRST_VISIT = (": decided by the first-visit policy from the request context (trained on "
                  "{rows:,} exposures of new customers)")
NO_NEW_OFFERS = "; the catalog has no offers for new customers (audience: new)"


def new_customer_uplifts(catalog: Catalog) -> list[float]:
    """The priors a new customer's decision ranks by, aligned with for_new_customers().offers."""
    offers = catalog.for_new_customers()
    return [] if offers is None else [o.prior_uplift or 0.0 for o in offers.offers]


def new_customer_decision(catalog: Catalog, customer_ref: str, context: DecisionContext,
                          snapshot: StateSnapshot | None = None,
                          settings: DecisionSettings = NO_SETTINGS,
                          rng: random.Random | None = None) -> Decision:
    """The decision for a customer without a profile (empty when the catalog has no offers
    for new customers), held out or explored by `settings` keyed by `customer_ref`."""
    offers = catalog.for_new_customers()
    if offers is None:
        return Decision((), ())
    uplift = np.array(new_customer_uplifts(catalog), dtype=np.float64)
    base = offers.new_customer_conversion
    scores = OfferScores(uplift, np.clip(base + uplift, 0.0, 1.0), base)
    return decide(CustomerFacts(customer_id=customer_ref), scores, offers,
                  snapshot or StateSnapshot(), context, settings, rng)


def first_visit_decision(first: Policy, customer_ref: str, context: DecisionContext,
                         snapshot: StateSnapshot, settings: DecisionSettings = NO_SETTINGS,
                         rng: random.Random | None = None
                         ) -> tuple[Decision, list[float], CustomerTable]:
    """The decision for a customer without a profile by the first-visit policy `first`: its
    one feature row is the request's context (kept in the table, so the log records what the
    next first-visit policy learns from), held out or explored by `settings` keyed by
    `customer_ref`; the uplifts it ranked by; that table."""
    table, row = first.situate(first.customer_from_profile(customer_ref, {}), 0, context)
    scores = first.score_row(table, row)
    decision = first.decide_scored(table, row, scores, context, snapshot, settings, rng)
    return decision, scores.uplift.tolist(), table
