"""Decisions for customers without a profile: unknown ids and anonymous sessions. Pure.

No model has seen these customers, so the decision is made from the catalog's offers for new
customers (`audience: new` in offers.yaml, e.g. a first-purchase gift and a consent prompt),
each scored by its `prior_uplift` over the catalog's `new_customer_conversion`, by the very
same `decide` as every other decision: eligibility by channel, stock in the request's store,
contact caps, ranking by expected incremental profit, reasons.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from features.catalog import Catalog
from service.decide import (
    ContactHistory,
    CustomerFacts,
    Decision,
    DecisionContext,
    LaunchStatus,
    OfferScores,
    StockLookup,
    decide,
)

#: why a decision was made without a profile (the answer's `customer_known_reason`)
UNKNOWN_ID = "no profile for this customer_id: decided from the offers for new customers"
ANONYMOUS = "anonymous session: decided from the offers for new customers"
NO_NEW_OFFERS = "; the catalog has no offers for new customers (audience: new)"


def new_customer_decision(catalog: Catalog, customer_ref: str, context: DecisionContext,
                          stock: StockLookup | None = None,
                          launches: Mapping[str, LaunchStatus] | None = None,
                          contacts: ContactHistory | None = None) -> Decision:
    """The decision for a customer without a profile (empty when the catalog has no offers
    for new customers)."""
    offers = catalog.for_new_customers()
    if offers is None:
        return Decision((), ())
    uplift = np.array([o.prior_uplift or 0.0 for o in offers.offers], dtype=np.float64)
    base = offers.new_customer_conversion
    scores = OfferScores(uplift, np.clip(base + uplift, 0.0, 1.0), base)
    return decide(CustomerFacts(customer_id=customer_ref), scores, offers, context, stock,
                  launches, contacts)
