"""Holdout assignment and exploration: deterministic, stratified, with honest propensities."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from features.catalog import Catalog, Offer
from service import decide as d
from service import experiment as x


def offer(offer_id: str) -> Offer:
    return Offer(offer_id=offer_id, name=offer_id, category="c", margin=10.0, cost=0.1)


CATALOG = Catalog(offers=(offer("a"), offer("b"), offer("c"), offer("d")))
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def decision(uplift: list[float], limit: int = 2) -> tuple[d.Decision, d.OfferScores]:
    scores = d.OfferScores(np.asarray(uplift), 0.05 + np.asarray(uplift), 0.05)
    facts = d.CustomerFacts("c1")
    return d.decide(facts, scores, CATALOG, d.DecisionContext("web", NOW, limit)), scores


def test_holdout_is_deterministic_and_takes_the_share_of_every_value_stratum():
    rng = np.random.default_rng(0)
    ids = [f"C{i:07d}" for i in range(20_000)]
    values = rng.lognormal(4, 1, len(ids))
    mask = x.holdout_mask(ids, values, 0.05, "salt")
    assert mask.sum() == 1_000
    assert np.array_equal(mask, x.holdout_mask(ids, values, 0.05, "salt"))
    deciles = np.quantile(values, np.linspace(0, 1, 11))
    for low, high in zip(deciles[:-1], deciles[1:], strict=True):
        inside = (values >= low) & (values <= high)
        assert abs(mask[inside].mean() - 0.05) < 0.005
    assert (mask != x.holdout_mask(ids, values, 0.05, "other salt")).any()
    assert not x.holdout_mask(ids, values, 0.0, "salt").any()


def test_a_customer_keeps_their_group_when_others_join_the_table():
    ids = [f"C{i:07d}" for i in range(5_000)]
    values = np.zeros(len(ids))  # one stratum: the group depends only on the hash ranks
    before = x.holdout_mask(ids, values, 0.1, "s")
    after = x.holdout_mask([*ids, "C9999999"], np.zeros(len(ids) + 1), 0.1, "s")
    assert (before == after[:-1]).mean() > 0.999


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
