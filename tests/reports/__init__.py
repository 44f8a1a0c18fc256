"""Shared builders for report tests: a small catalog, decision records, a seeded simulation.

Tests write these into a real state store (SQLite in tmp_path, or PostgreSQL) and read the
frames back through `DecisionLog`, exactly as the CLI and the API do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from features.catalog import Catalog, Offer
from state import DecisionRecord, Outcome, StateStore
from state.log import Candidate

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

CATALOG = Catalog(offers=(
    Offer(offer_id="A", name="Offer A", category="shoes", margin=20.0, cost=1.0),
    Offer(offer_id="B", name="Offer B", category="bags", margin=10.0, cost=0.5),
    Offer(offer_id="C", name="Offer C", category="socks", margin=5.0, cost=0.0),
))


def decision(decision_id: str, *, customer: str | None = None, holdout: bool = False,
             chosen: str | None = "A", offers: Sequence[str] | None = None,
             candidates: Sequence[str] | None = None, channel: str = "web",
             segment: str | None = "gold", features: dict[str, Any] | None = None,
             at: datetime = T0) -> DecisionRecord:
    """A decision record; by default it serves (or, for a holdout, would serve) `chosen`."""
    if offers is None:
        offers = () if holdout or chosen is None else (chosen,)
    if candidates is None:
        candidates = () if chosen is None else (chosen,)
    return DecisionRecord(
        decision_id=decision_id, decided_at=at, customer_id=customer or f"C-{decision_id}",
        channel=channel, model_version="7", offer_ids=tuple(offers), holdout=holdout,
        chosen_offer=chosen, candidates=tuple(Candidate(c, 1.0, 0.01) for c in candidates),
        features=features or {}, segment=segment)


def event(decision_id: str, name: str = "purchased", revenue: float = 0.0,
          offer_id: str | None = "A", at: datetime = T0) -> Outcome:
    """An outcome an hour after T0 by default."""
    return Outcome(decision_id, offer_id, name, revenue, at + timedelta(hours=1))


def write(store: StateStore, records: Iterable[DecisionRecord],
          outcomes: Iterable[Outcome] = ()) -> None:
    """Log decisions (one transaction) and outcomes through the store's DecisionLog."""
    store.log.record_many(records)
    for outcome in outcomes:
        store.log.record_outcome(outcome)


def simulate(n: int, *, p_treated: float, p_holdout: float, share: float, seed: int,
             basket: float = 50.0, offer: str = "A"
             ) -> tuple[list[DecisionRecord], list[Outcome]]:
    """`n` decisions, a `share` randomized holdout, purchases with known rates.

    Revenue per purchase is gamma with mean `basket`, so the true revenue lift per decision
    is (p_treated - p_holdout) * basket.
    """
    rng = np.random.default_rng(seed)
    held = rng.random(n) < share
    bought = rng.random(n) < np.where(held, p_holdout, p_treated)
    spend = rng.gamma(2.0, basket / 2.0, n)
    records = [decision(f"d{i:06d}", holdout=bool(held[i]), chosen=offer,
                        at=T0 + timedelta(seconds=i)) for i in range(n)]
    outcomes = [event(f"d{i:06d}", revenue=float(spend[i]),
                      offer_id=None if held[i] else offer, at=T0 + timedelta(seconds=i))
                for i in np.flatnonzero(bought).tolist()]
    return records, outcomes
