"""The SEALED worlds (nba.sealed_worlds) generate the same data for the same seed, valid under
the data contract, with the truth shaped as their descriptions say. No training here."""

from __future__ import annotations

import numpy as np
import pytest

from nba.sealed_worlds import CATEGORIES, SEALED
from nba.worlds import World, generate
from tests.model.world_checks import (
    assert_contract_valid,
    assert_seeded,
    assert_truth_is_probabilities,
)


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    """Every sealed world at seed 3."""
    return {name: generate(design, 3) for name, design in SEALED.items()}


def _oracle_arms(world: World) -> np.ndarray:
    """Each test customer's best arm (0: nothing, k: offer k - 1)."""
    net = world.net
    return np.where(net.max(axis=1) > 0, net.argmax(axis=1) + 1, 0)


@pytest.mark.parametrize("name", sorted(SEALED))
def test_the_same_seed_generates_the_same_world(name, worlds):
    assert_seeded(SEALED[name], worlds[name], 3)


@pytest.mark.parametrize("name", sorted(SEALED))
def test_a_sealed_world_is_valid_under_the_data_contract(name, worlds):
    design = SEALED[name]
    assert_contract_valid(design, worlds[name])
    assert 1_000 <= design.rows_per_arm <= 7_000


@pytest.mark.parametrize("name", sorted(SEALED))
def test_a_sealed_worlds_logging_and_conversion_are_probabilities(name):
    assert_truth_is_probabilities(SEALED[name])


def test_electronics_sessions_context_varies_per_exposure_and_drives_the_effects(worlds):
    world = worlds["electronics_sessions"]
    ex, test = world.exposures, world.test
    per_customer = ex.groupby("customer_id")
    assert 2.5 < per_customer.size().mean() < 3.5
    assert per_customer["page"].nunique().gt(1).mean() > 0.5  # one customer, several contexts
    assert ex["propensity"].min() < 0.03 and ex["propensity"].max() > 0.55
    phone = test["device"].isin(["ios", "android"]).to_numpy()
    young = test["age"].to_numpy() < 30
    desktop = (test["device"] == "desktop").to_numpy()
    arms = _oracle_arms(world)
    assert (arms[phone & young] == 1).mean() > 0.8  # the app discount for young phone users
    assert np.allclose(world.test_uplift[desktop, 0], -0.004)  # and it hurts on a desktop
    off_cart = ~test["page"].isin(["product", "cart"]).to_numpy()
    assert (test["cart_value"].to_numpy()[off_cart] == 0).all()
    assert np.allclose(world.test_uplift[off_cart, 1], 0.003)  # pay-in-3 needs a cart
    assert world.oracle() >= 1.5 * world.best_single() > 0.0


def test_department_catalogue_offers_of_a_category_move_together(worlds):
    world = worlds["department_catalogue"]
    assert world.test_uplift.shape[1] == 6 * 5
    corr = np.corrcoef(world.test_uplift.T)
    category = np.arange(30) // 5
    same = (category[:, None] == category[None, :]) & ~np.eye(30, dtype=bool)
    assert corr[same].mean() > 0.5 and corr[category[:, None] != category[None, :]].mean() < 0.1
    shares = world.test[[f"share_{c}" for c in CATEGORIES]].to_numpy()
    assert ((world.net.argmax(axis=1) // 5) == shares.argmax(axis=1)).mean() > 0.6
    assert world.oracle() >= 1.5 * world.best_single() > 0.0


def test_meal_kit_weekly_repeat_customers_high_base_small_effects(worlds):
    design, world = SEALED["meal_kit_weekly"], worlds["meal_kit_weekly"]
    assert design.base is not None
    sizes = world.exposures.groupby("customer_id").size()
    assert sizes.mean() > 5.0
    assert 0.2 < world.exposures["converted"].mean() < 0.35
    assert world.test_uplift.min() >= -0.012 and world.test_uplift.max() <= 0.12
    truth = world.logged_truth
    assert truth is not None and 0.2 < truth[:, 0].mean() < 0.35
    assert not [c for c in world.exposures.columns if c.startswith("_")]
    assert world.oracle() > world.best_single() > 0.0


def test_diy_cheap_default_one_cheap_offer_two_costly_segments(worlds):
    world = worlds["diy_cheap_default"]
    arms = _oracle_arms(world)
    assert 0.7 < (arms == 1).mean() < 0.92  # the voucher for most
    hire, kitchen = arms == 2, arms == 3
    assert 0.03 < hire.mean() < 0.2 and 0.02 < kitchen.mean() < 0.2
    assert world.test.loc[hire, "trade_account"].all()
    assert world.test.loc[kitchen, "homeowner"].all()
    assert world.best_single() == pytest.approx(world.net[:, 0].mean())
    assert world.oracle() >= 1.5 * world.best_single() > 0.0


def test_outdoor_seasons_peak_in_their_months_and_recency_decays(worlds):
    world = worlds["outdoor_seasons"]
    month = world.test["month"].to_numpy()
    days = world.test["days_since_purchase"].to_numpy()
    jacket, summer = world.test_uplift[:, 0], world.test_uplift[:, 1]
    assert jacket[month == 11].mean() > 5 * jacket[month == 5].mean()
    assert summer[month == 6].mean() > 5 * summer[month == 12].mean()
    look = world.test_uplift[:, 2]
    assert look[days <= 7].mean() > 3 * look[(days > 60) & (days < 120)].mean()
    assert (world.test_uplift[days < 30, 3] < 0).all()  # the win-back hurts recent buyers
    ex = world.exposures
    jackets = ex["treatment"] == world.catalog.offer_ids[0]
    season = ex["month"].isin([10, 11, 12, 1])
    assert np.allclose(ex.loc[jackets & season, "propensity"], 3 / 7)  # three times as often
    off = ex.loc[jackets & ~season, "propensity"].to_numpy()
    assert np.allclose(np.minimum(abs(off - 1 / 5), abs(off - 1 / 7)), 0.0)  # 1/7 in summer
    assert world.oracle() >= 1.5 * world.best_single() > 0.0
