"""Holdout assignment and exploration: deterministic per customer, with honest propensities."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from decisioning import core
from decisioning import decision as d
from decisioning import experiment as x
from decisioning import reasons as r
from decisioning.snapshot import EMPTY
from features.catalog import Catalog, Offer


def offer(offer_id: str) -> Offer:
    return Offer(offer_id=offer_id, name=offer_id, category="c", margin=10.0, cost=0.1)


CATALOG = Catalog(offers=(offer("a"), offer("b"), offer("c"), offer("d")))
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def decision(uplift: list[float], limit: int = 2) -> tuple[d.Decision, d.OfferScores]:
    scores = d.OfferScores(np.asarray(uplift), 0.05 + np.asarray(uplift), 0.05)
    facts = d.CustomerFacts("c1")
    return core.rank(facts, scores, CATALOG, EMPTY, d.DecisionContext("web", NOW, limit)), scores


def test_holdout_is_deterministic_per_customer_and_takes_the_share_of_every_value_stratum():
    rng = np.random.default_rng(0)
    ids = [f"C{i:07d}" for i in range(20_000)]
    values = rng.lognormal(4, 1, len(ids))
    mask = x.holdout_of(ids, 0.05, "salt")
    assert abs(mask.mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(ids))
    assert np.array_equal(mask, x.holdout_of(ids, 0.05, "salt"))
    # one customer alone is in the same group as in the whole table: what lets every path agree
    assert [x.in_holdout(cid, 0.05, "salt") for cid in ids[:500]] == mask[:500].tolist()
    deciles = np.quantile(values, np.linspace(0, 1, 11))
    for low, high in zip(deciles[:-1], deciles[1:], strict=True):
        inside = (values >= low) & (values <= high)
        assert abs(mask[inside].mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / inside.sum())
    assert (mask != x.holdout_of(ids, 0.05, "other salt")).any()
    assert not x.holdout_of(ids, 0.0, "salt").any()


def test_the_core_holds_out_the_group_and_logs_what_they_would_have_had():
    settings = d.DecisionSettings(holdout_share=0.3, salt="s", exploration=0.1)
    scores = d.OfferScores(np.array([0.05, 0.03, 0.0, 0.01]), np.array([0.1, 0.08, 0.05, 0.06]),
                           0.05)
    context = d.DecisionContext("web", NOW, 2)
    held = [cid for cid in (f"C{i}" for i in range(200)) if x.in_holdout(cid, 0.3, "s")]
    assert held
    for cid in held:
        decision = core.decide(d.CustomerFacts(cid), scores, CATALOG, EMPTY, context, settings,
                               random.Random(0))
        assert decision.holdout and decision.offers == () and not decision.explored
        assert decision.chosen_offer == "a"
        assert {s.reason for s in decision.suppressed} == {r.HOLDOUT}
        assert decision.suppressed[0].details["share"] == 0.3
        assert decision.propensity == pytest.approx(0.3)  # P(nothing served) = the holdout's


def test_holdout_decision_serves_nothing_and_explains_every_offer():
    best, _ = decision([0.05, 0.03, 0.0, 0.01])
    held = x.held_out(best, 0.05)
    assert held.offers == ()
    assert {s.reason for s in held.suppressed} == {x.HOLDOUT}
    assert sorted(s.offer_id for s in held.suppressed) == sorted(CATALOG.offer_ids)
    assert "5% global holdout" in held.suppressed[0].message


def test_exploration_frequencies_match_the_logged_propensities():
    best, scores = decision([0.05, 0.03, 0.0, -0.02])  # a, b shown; c, d eligible but not worth
    rng = random.Random(1)
    draws = [x.explore(best, CATALOG, scores, 0.2, rng) for _ in range(20_000)]
    tops = Counter(s.decision.offers[0].offer_id for s in draws)
    logged = {s.decision.offers[0].offer_id: s.propensity for s in draws}
    assert logged["a"] == pytest.approx(0.8 + 0.2 / 4)
    assert logged["d"] == pytest.approx(0.2 / 4)
    for offer_id, propensity in logged.items():
        assert tops[offer_id] / len(draws) == pytest.approx(propensity, abs=0.01)
    explored = next(s for s in draws if s.decision.offers[0].offer_id == "d")
    assert explored.explored and explored.decision.offers[0].reasons[0].code == x.EXPLORATION
    assert [o.rank for o in explored.decision.offers] == [1, 2]
    shown = [o.offer_id for o in explored.decision.offers]
    suppressed = [s.offer_id for s in explored.decision.suppressed]
    assert sorted(shown + suppressed) == sorted(CATALOG.offer_ids)


def test_nothing_worth_sending_is_served_with_probability_one_minus_exploration():
    nothing, scores = decision([-0.01, -0.02, 0.0, 0.0])
    rng = random.Random(2)
    draws = [x.explore(nothing, CATALOG, scores, 0.1, rng) for _ in range(5_000)]
    empty = [s for s in draws if not s.decision.offers]
    assert len(empty) / len(draws) == pytest.approx(0.9, abs=0.015)
    assert all(s.propensity == pytest.approx(0.9) for s in empty)
    served = [s for s in draws if s.decision.offers]
    assert all(s.explored and s.propensity == pytest.approx(0.1 / 4) for s in served)


def test_without_exploration_the_best_offer_is_served_with_propensity_one():
    best, scores = decision([0.05, 0.03, 0.0, 0.01])
    served = x.explore(best, CATALOG, scores, 0.0, random.Random(0))
    assert served.decision is best and served.propensity == 1.0 and not served.explored
