"""A decision as the decision log records it: the same record from the service and campaigns."""

from __future__ import annotations

import math

from decisioning.decision import Decision, DecisionContext
from decisioning.experiment import eligible_offers
from features.catalog import Catalog
from features.customers import CustomerTable
from state.log import Candidate, DecisionRecord


def decision_record(decision: Decision, uplifts: list[float], catalog: Catalog,
                    table: CustomerTable, row: int, context: DecisionContext, decision_id: str,
                    model_version: str) -> DecisionRecord:
    """The log entry of a decision: what was served, what it would have been for a holdout,
    every eligible offer's estimate, every suppression, and the customer's features."""
    eligible = set(eligible_offers(decision)) | {o.offer_id for o in decision.offers}
    candidates = tuple(
        Candidate(offer.offer_id, round(uplift * offer.margin - offer.cost, 6),
                  round(uplift, 6))
        for offer, uplift in zip(catalog.offers, uplifts, strict=True)
        if offer.offer_id in eligible and not math.isnan(uplift))
    return DecisionRecord(
        decision_id=decision_id, decided_at=context.now, customer_id=table.ids[row],
        channel=context.channel, model_version=model_version,
        offer_ids=tuple(o.offer_id for o in decision.offers), holdout=decision.holdout,
        explored=decision.explored, chosen_offer=decision.chosen_offer,
        propensity=decision.propensity, candidates=candidates,
        suppressed={s.offer_id: s.reason for s in decision.suppressed},
        features=table.feature_row(row), segment=table.loyalty_tier[row])
