"""The fitted models: the fast serving path equals causalml's own predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.settings import BoosterParams
from training.split import holdout_mask
from training.uplift import fit_uplift

PARAMS = BoosterParams(n_estimators=30, min_child_samples=20, n_jobs=1)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(5)
    n = 6_000
    X = rng.random((n, 4)).astype(np.float32)
    treatment = rng.choice(np.array(["control", "a", "b"], dtype=object), n)
    base = 0.1 + 0.1 * X[:, 0]
    lift = np.where(treatment == "a", 0.2 * (X[:, 1] > 0.5), 0.0) + np.where(
        treatment == "b", -0.05, 0.0)
    converted = (rng.random(n) < base + lift).astype(int)
    model, learner = fit_uplift(X, treatment, converted, control_label="control", params=PARAMS,
                                seed=1)
    return X, model, learner


def test_booster_fast_path_equals_causalml_predict(fitted):
    X, model, learner = fitted
    uplift, p_treated = model.predict(X[:500])
    expected = learner.predict(X[:500], verbose=False)
    np.testing.assert_allclose(uplift, expected, rtol=1e-9, atol=1e-12)
    assert model.offer_ids == ("a", "b")
    one_row, _ = model.predict(X[:1])
    np.testing.assert_allclose(one_row, expected[:1], rtol=1e-9, atol=1e-12)
    assert ((p_treated >= 0) & (p_treated <= 1)).all()


def test_uplift_model_learns_the_sign_and_the_segment(fitted):
    X, model, _ = fitted
    uplift, _ = model.predict(X)
    segment = X[:, 1] > 0.5
    assert uplift[segment, 0].mean() > 0.1 > uplift[~segment, 0].mean()
    assert uplift[:, 1].mean() < 0


def test_holdout_split_is_by_customer_and_stable():
    ids = pd.Series([f"c{i % 500}" for i in range(5_000)])
    mask = holdout_mask(ids, 0.3, seed=4)
    assert np.array_equal(mask, holdout_mask(ids, 0.3, seed=4))
    by_customer = pd.Series(mask).groupby(ids).nunique()
    assert (by_customer == 1).all()  # no customer on both sides
    assert 0.2 < mask.mean() < 0.4
    with pytest.raises(ValueError, match="test_size"):
        holdout_mask(ids, 1.5, seed=4)


def test_different_seeds_give_different_splits():
    ids = pd.Series([f"c{i}" for i in range(2_000)])
    assert not np.array_equal(holdout_mask(ids, 0.3, seed=1), holdout_mask(ids, 0.3, seed=2))


def test_s_learner_fast_path_equals_causalml_predict():
    rng = np.random.default_rng(6)
    n = 4_000
    X = rng.random((n, 3)).astype(np.float32)
    treatment = rng.choice(np.array(["control", "a", "b"], dtype=object), n)
    lift = np.where(treatment == "a", 0.3 * (X[:, 0] > 0.5), 0.0)
    converted = (rng.random(n) < 0.1 + lift).astype(int)
    model, learner = fit_uplift(X, treatment, converted, control_label="control", params=PARAMS,
                                seed=2, learner="s")
    uplift, p_treated = model.predict(X[:300])
    np.testing.assert_allclose(uplift, learner.predict(X[:300], verbose=False), rtol=1e-9,
                               atol=1e-12)
    assert model.control is None and model.kind == "s"
    assert uplift[X[:300, 0] > 0.5, 0].mean() > uplift[X[:300, 0] <= 0.5, 0].mean()


def test_x_learner_serving_path_equals_causalml_predict_and_survives_save_load(fitted, tmp_path):
    from features.catalog import Catalog, Offer
    from features.schema import Feature, FeatureSpec
    from training.learners import fit_x
    from training.package import Policy

    X, _, _ = fitted
    rng = np.random.default_rng(6)
    treatment = rng.choice(np.array(["control", "a", "b"], dtype=object), len(X),
                           p=[0.5, 0.3, 0.2])
    propensity = np.select([treatment == "control", treatment == "a"], [0.5, 0.3], 0.2)
    converted = (rng.random(len(X)) < 0.1 + 0.2 * (treatment == "a") * (X[:, 1] > 0.5)
                 ).astype(int)
    model, learner = fit_x(X, treatment, converted, propensity, control_label="control",
                           params=PARAMS, seed=1)
    assert model.kind == "x" and model.weights == pytest.approx((0.3 / 0.8, 0.2 / 0.7))
    p = {g: np.full(500, w) for g, w in zip(learner.t_groups, model.weights, strict=True)}
    expected = learner.predict(X[:500], p=p)
    uplift, _ = model.predict(X[:500])
    np.testing.assert_allclose(uplift, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.predict(X[:1])[0], expected[:1], rtol=1e-6, atol=1e-9)
    assert uplift[X[:500, 1] > 0.5, 0].mean() > uplift[X[:500, 1] <= 0.5, 0].mean() + 0.1

    spec = FeatureSpec(tuple(Feature(f"f{j}", "numeric", ()) for j in range(4)))
    catalog = Catalog(offers=(Offer(offer_id="a", name="A", category="t", margin=10.0),
                              Offer(offer_id="b", name="B", category="t", margin=10.0)))
    booster = model.control
    assert booster is not None
    policy = Policy(spec, catalog, model, booster, booster, shrinkage=0.5,
                    population_uplift=np.array([0.1, 0.0]), penalty=np.array([0.0, 0.02]))
    policy.save(tmp_path / "policy")
    again = Policy.load(tmp_path / "policy")
    np.testing.assert_allclose(again.score(X[:50].astype(np.float64))[0],
                               policy.score(X[:50].astype(np.float64))[0])
    assert again.uplift.kind == "x" and again.penalty is not None
    assert again.shrink(np.zeros((1, 2)))[0] == pytest.approx([0.05, -0.02])

    # the gated rule serves one shrinkage per offer: offer b at its average effect
    policy.shrinkage, policy.penalty = np.array([1.0, 0.0]), None
    policy.save(tmp_path / "gated")
    gated = Policy.load(tmp_path / "gated")
    assert gated.shrink(np.array([[0.3, 0.3]]))[0] == pytest.approx([0.3, 0.0])
