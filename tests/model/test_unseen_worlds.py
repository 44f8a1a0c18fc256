"""The UNSEEN worlds (nba.unseen_worlds) generate the same data for the same seed, valid under
the data contract (missing values included), with the truth shaped as their descriptions say.
No training here."""

from __future__ import annotations

import numpy as np
import pytest

from features.build import infer_spec
from features.schema import MAX_LEVELS
from nba.unseen_worlds import EVENT_STORES, HISTORY, N_STORES, UNSEEN
from nba.worlds import World, generate
from tests.model.world_checks import (
    assert_contract_valid,
    assert_seeded,
    assert_truth_is_probabilities,
)


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    """Every unseen world at seed 3."""
    return {name: generate(design, 3) for name, design in UNSEEN.items()}


@pytest.mark.parametrize("name", sorted(UNSEEN))
def test_the_same_seed_generates_the_same_world(name, worlds):
    assert_seeded(UNSEEN[name], worlds[name], 3)


@pytest.mark.parametrize("name", sorted(UNSEEN))
def test_an_unseen_world_is_valid_under_the_data_contract(name, worlds):
    assert_contract_valid(UNSEEN[name], worlds[name], nulls=True)


@pytest.mark.parametrize("name", sorted(UNSEEN))
def test_an_unseen_worlds_logging_and_conversion_are_probabilities(name):
    assert_truth_is_probabilities(UNSEEN[name])


def test_loyal_multiplier_lifts_in_proportion_to_the_base(worlds):
    design, world = UNSEEN["loyal_multiplier"], worlds["loyal_multiplier"]
    assert design.base is not None
    base = design.base(world.test)
    assert base.min() < 0.02 and base.max() > 0.40
    assert np.allclose(world.test_uplift[:, 0], 0.30 * base)
    assert np.allclose(world.test_uplift[:, 1], 0.15 * base)
    # no offer pays on average, yet the oracle serves about half of the customers something
    assert world.best_single() == 0.0 and world.oracle() > 0.1
    served = world.net.max(axis=1) > 0
    assert 0.3 < served.mean() < 0.7
    # the customers double points pay for are the ones most likely to buy anyway
    assert base[world.net.argmax(axis=1) == 0].min() > base[~served].max() - 1e-9


def test_store_events_pay_in_a_handful_of_150_stores(worlds):
    world = worlds["store_events"]
    assert world.exposures["store"].nunique() == N_STORES
    store = infer_spec(world.exposures, list(world.columns)).features[0]
    # past MAX_LEVELS the stores are level codes: all 150 reach the models, where one-hot over
    # the 50 most frequent (the contract before level codes) folded some event stores away
    assert store.encoding == "codes" and len(store.levels) == N_STORES
    top = set(world.exposures["store"].value_counts().index[:MAX_LEVELS])
    assert 0 < len(set(EVENT_STORES) - top) < len(EVENT_STORES)
    event = world.test["store"].isin(EVENT_STORES).to_numpy()
    assert world.test_uplift[event, 0].max() > 0.08
    assert np.allclose(world.test_uplift[~event, 0], 0.005)
    assert world.oracle() >= 1.5 * world.best_single() > 0.0


def test_new_and_missing_the_missing_history_is_the_signal(worlds):
    world = worlds["new_and_missing"]
    never = world.test["orders_12m"].isna().to_numpy()
    assert 0.28 < never.mean() < 0.38
    # a third of the numeric features missing together, for exactly the never-ordered
    assert (world.test[list(HISTORY)].isna().to_numpy() == never[:, None]).all()
    assert 0.15 < world.test["age"].isna().mean() < 0.25
    assert world.exposures[list(HISTORY)].isna().any(axis=None)
    best = world.net.argmax(axis=1)
    assert (best[never] == 0).all() and (best[~never] != 0).all()
    assert world.oracle() >= 1.5 * world.best_single() > 0.0


def test_twins_small_the_best_single_offer_is_the_oracle(worlds):
    design, world = UNSEEN["twins_small"], worlds["twins_small"]
    assert len(design.margins) == 4 and design.rows_per_arm == 700
    assert np.array_equal(world.test_uplift[:, 0], world.test_uplift[:, 1])
    assert design.costs[0] < design.costs[1]
    assert (world.test_uplift[:, 2] < 0).any()  # the bundle cannibalises frequent buyers
    assert (world.net.argmax(axis=1) == 0).all()
    assert np.isclose(world.oracle(), world.best_single())
    postal = world.exposures["treatment"] == world.catalog.offer_ids[1]
    card = world.exposures["account"] == "store_card"
    seen = world.exposures.loc[postal, "propensity"].groupby(card[postal]).first()
    assert np.allclose(seen.sort_index().to_numpy(), [0.03, 0.40])


def test_at_least_two_unseen_worlds_pay_for_targeting(worlds):
    assert sum(w.oracle() >= 1.5 * max(w.best_single(), 1e-9) for w in worlds.values()) >= 2
