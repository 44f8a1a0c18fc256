"""What the models learned, checked against the demo generator's KNOWN truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from decisioning.eligibility import tier_eligibility
from features import io
from nba.demo import TRUE_UPLIFT
from training.evaluate import greedy_arm

pytestmark = pytest.mark.slow  # the real trained champion against the true uplift

# Offers whose true uplift has several levels: rank agreement is measured by Spearman.
GRADED_OFFERS = ["collab_sneaker_early_access", "winback_15_off", "sitewide_10_off"]
# Offers that help one segment and nobody else: Spearman is capped near sqrt(3p(1-p)) by the
# ties, so we measure how well the learned uplift separates the helped segment (ROC AUC).
# (offer, true uplift from which a customer counts as "helped")
SEGMENT_OFFERS = [("beauty_sample_box", 0.05), ("kids_back_to_school", 0.05),
                  ("puffer_jacket_drop", 0.10)]


@pytest.fixture(scope="module")
def truth(trained, loaded) -> pd.DataFrame:
    """True uplift aligned to the loaded customer table's rows."""
    frame = pd.read_parquet(trained.data_dir / TRUE_UPLIFT).set_index("customer_id")
    return frame.loc[loaded.customers.ids]


@pytest.fixture(scope="module")
def learned(loaded) -> np.ndarray:
    """Learned per-customer uplift (before shrinkage), offers in catalog order."""
    return loaded.policy.raw_uplift(loaded.customers.matrix)


@pytest.fixture(scope="module")
def served(loaded) -> np.ndarray:
    """The uplift the service ranks by (after shrinkage)."""
    uplift, _, _ = loaded.policy.score(loaded.customers.matrix)
    return uplift


@pytest.mark.parametrize("offer_id", GRADED_OFFERS)
def test_learned_uplift_ranks_customers_like_the_truth(loaded, truth, learned, offer_id):
    k = loaded.policy.catalog.offer_ids.index(offer_id)
    rho = spearmanr(learned[:, k], truth[offer_id].to_numpy()).statistic
    assert rho >= 0.5, f"{offer_id}: Spearman {rho:.3f} against the true uplift"


@pytest.mark.parametrize(("offer_id", "helped_from"), SEGMENT_OFFERS)
def test_learned_uplift_finds_the_segment_an_offer_helps(loaded, truth, learned, offer_id,
                                                         helped_from):
    k = loaded.policy.catalog.offer_ids.index(offer_id)
    helped = truth[offer_id].to_numpy() >= helped_from
    auc = roc_auc_score(helped, learned[:, k])
    assert auc >= 0.8, f"{offer_id}: AUC {auc:.3f} separating the customers it helps"


def test_learned_policy_beats_treat_nobody_and_best_single_offer_in_true_profit(
        loaded, truth, served):
    catalog = loaded.policy.catalog
    margins = np.array([o.margin for o in catalog.offers])
    costs = np.array([o.cost for o in catalog.offers])
    eligible = tier_eligibility(catalog, loaded.customers.loyalty_tier)
    true_profit = truth[list(catalog.offer_ids)].to_numpy() * margins - costs
    true_profit = np.where(eligible, true_profit, 0.0)  # ineligible customers get nothing

    arm = greedy_arm(np.nan_to_num(served * margins - costs, nan=-np.inf), eligible)
    rows = np.arange(len(arm))
    learned_value = np.where(arm > 0, true_profit[rows, np.maximum(arm - 1, 0)], 0.0).mean()
    best_single = true_profit.mean(axis=0).max()
    oracle = np.maximum(true_profit.max(axis=1), 0.0).mean()

    assert learned_value > best_single > 0.0  # treat-nobody is worth exactly 0
    assert learned_value >= 0.5 * oracle, (learned_value, oracle)


def test_ipw_policy_value_on_holdout_beats_the_baselines(trained):
    m = trained.metrics
    assert m["policy_value_learned_uplift_policy"] > m["policy_value_treat_nobody"]
    assert m["policy_value_learned_uplift_policy"] > m["policy_value_best_single_offer"]
    assert m["policy_value_learned_ci_low"] > m["policy_value_treat_nobody"]


def test_negative_uplift_is_learned_where_the_truth_is_negative(loaded, truth, learned):
    k = loaded.policy.catalog.offer_ids.index("winback_15_off")
    hurt = truth["winback_15_off"].to_numpy() < 0
    helped = truth["winback_15_off"].to_numpy() > 0
    assert learned[hurt, k].mean() < 0 < learned[helped, k].mean()


def test_customers_table_reads_the_contract(trained, loaded):
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS)
    assert len(loaded.customers) == len(customers)
