"""The first-visit policy (training/first_visit.py): trained from new customers' exposures, or
skipped with a warning when they cannot train one."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.catalog import Catalog, Offer
from training import first_visit
from training.settings import BoosterParams, TrainSettings


def test_an_arm_one_fold_cannot_fit_skips_the_first_visit_policy(caplog) -> None:
    """400 new customers' rows, but offer "rare" only in 6 rows of one visitor: a count over
    all rows passes, the cross-fitting fold holding that visitor has none to fit on. The
    customer policy's training goes on; the first-visit policy is skipped, saying why."""
    rng = np.random.default_rng(3)
    n = 400
    first = pd.DataFrame({"customer_id": [f"v{i}" for i in range(n)],
                          "device": rng.choice(np.array(["mobile", "desktop"], dtype=object), n),
                          "treatment": np.where(np.arange(n) % 2 == 0, "control", "welcome"),
                          "converted": rng.integers(0, 2, n), "revenue": 0.0,
                          "propensity": 0.5, "new_customer": True})
    first.loc[:5, ["customer_id", "treatment"]] = ["one_visitor", "rare"]
    catalog = Catalog(offers=(
        Offer(offer_id="regular", name="R", category="t", margin=10.0),
        Offer(offer_id="welcome", name="W", category="t", margin=10.0, audience="new",
              prior_uplift=0.02),
        Offer(offer_id="rare", name="X", category="t", margin=10.0, audience="new",
              prior_uplift=0.02)))
    settings = TrainSettings(params=BoosterParams(n_estimators=5, n_jobs=1), learners=("s",),
                             capacities=("low",), folds=3)
    with caplog.at_level(logging.WARNING, logger="training.first_visit"):
        assert first_visit.fit(first, [("device", "categorical")], catalog, settings) is None
    assert "too few rows to cross-fit 3 folds" in caplog.text and "'rare': 0" in caplog.text
