"""A categorical of more than MAX_LEVELS levels as LightGBM level codes: every learner splits it
natively, serving scores it the same one row or many at a time, and a saved policy keeps it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_matrix, build_row, infer_spec
from features.catalog import Catalog, Offer
from features.schema import MAX_LEVELS, Feature, FeatureSpec
from training.fastpredict import SingleRowPredictor
from training.learners import fit_learner
from training.package import Policy
from training.pipeline import fitted_params
from training.response import fit_response
from training.settings import BoosterParams, TrainSettings
from training.uplift import UpliftModel

PARAMS = BoosterParams(n_estimators=40, min_child_samples=40, n_jobs=1)
N_STORES = 120
#: stores where the offer pays: all past the 50 most frequent, so one-hot would fold them away
EVENT = (60, 75, 90, 105)


def stores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Home stores by Zipf-like size (store 0 the biggest)."""
    share = (np.arange(N_STORES) + 4.0) ** -0.6
    return np.array([f"s{k:03d}" for k in range(N_STORES)], dtype=object)[
        rng.choice(N_STORES, n, p=share / share.sum())]


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, FeatureSpec]:
    """Offer "event" lifts conversion by 25 points in 4 small stores; "flat" by 2 everywhere."""
    rng = np.random.default_rng(12)
    n = 40_000
    frame = pd.DataFrame({"store": stores(rng, n), "age": rng.normal(40.0, 10.0, n),
                          "treatment": rng.choice(np.array(["control", "event", "flat"],
                                                           dtype=object), n)})
    event_store = frame["store"].isin([f"s{k:03d}" for k in EVENT]).to_numpy()
    lift = np.select([frame["treatment"] == "event", frame["treatment"] == "flat"],
                     [0.25 * event_store, np.full(n, 0.02)], 0.0)
    frame["converted"] = (rng.random(n) < 0.05 + lift).astype(int)
    spec = infer_spec(frame, [("store", "categorical"), ("age", "numeric")])
    return frame, spec


def test_the_store_is_one_column_of_codes(world: tuple[pd.DataFrame, FeatureSpec]) -> None:
    frame, spec = world
    store = spec.features[0]
    assert frame["store"].nunique() > MAX_LEVELS and store.encoding == "codes"
    assert spec.width == 2 and spec.categorical_columns == (0,)
    codes = build_matrix(frame.head(5), spec)[:, 0]
    np.testing.assert_array_equal(codes, [store.levels.index(s) for s in frame["store"][:5]])


@pytest.mark.parametrize("learner", ["s", "t", "x"])
def test_an_effect_in_stores_past_the_50th_is_learned(
        world: tuple[pd.DataFrame, FeatureSpec], learner: str) -> None:
    """Each learner (S shifted by its treatment flag) finds the event stores' uplift (truly
    0.25; S, which must find the flag-by-store interaction, about 0.1 with 40 trees); one-hot
    over the 50 most frequent stores (the old cap) folds them away and cannot."""
    frame, spec = world
    top = tuple(sorted(frame["store"].value_counts().index[:MAX_LEVELS]))
    capped = FeatureSpec((Feature("store", "categorical", top), spec.features[1]))
    event_store = frame["store"].isin([f"s{k:03d}" for k in EVENT]).to_numpy()
    found = {}
    for encoded in (spec, capped):
        model = fit_learner(learner, build_matrix(frame, encoded),  # type: ignore[arg-type]
                            frame["treatment"].to_numpy(dtype=object),
                            frame["converted"].to_numpy(), np.full(len(frame), 1 / 3),
                            control_label="control",
                            params=replace(PARAMS, categorical=encoded.categorical_columns),
                            seed=3)
        uplift = model.predict(build_matrix(frame, encoded))[0][:, model.offer_ids.index("event")]
        found[encoded.features[0].encoding] = (uplift[event_store].mean(),
                                               uplift[~event_store].mean())
        if encoded is spec:
            store_col = 1 if learner == "s" else 0  # the S-learner's column 0 is the flag
            for booster in (*model.treated, *([] if model.control is None else [model.control])):
                info = booster.dump_model()["feature_infos"][f"Column_{store_col}"]
                assert len(info["values"]) > MAX_LEVELS  # split as a categorical: its levels
    assert found["codes"][0] > 0.08 and found["codes"][1] < 0.02
    assert found["one_hot"][0] < 0.03


def test_fast_path_and_batch_score_a_coded_model_alike(
        world: tuple[pd.DataFrame, FeatureSpec]) -> None:
    """build_row + the single-row C API equals build_matrix + Booster.predict, unseen and null
    stores included."""
    frame, spec = world
    params = replace(PARAMS, categorical=spec.categorical_columns)
    X = build_matrix(frame, spec)
    model = fit_learner("t", X, frame["treatment"].to_numpy(dtype=object),
                        frame["converted"].to_numpy(), np.full(len(frame), 1 / 3),
                        control_label="control", params=params, seed=4)
    serving = frame[["store", "age"]].head(300).astype(object)
    serving.iloc[::5, 0] = "a store opened after training"
    serving.iloc[1::7, 0] = None
    batch, _ = model.predict(build_matrix(serving, spec))
    boosters = (model.control, *model.treated)
    fast = SingleRowPredictor(boosters)  # type: ignore[arg-type]
    for row, record in enumerate(serving.to_dict("records")):
        one = build_row(record, spec)
        np.testing.assert_allclose(model.predict(one)[0][0], batch[row], rtol=1e-12, atol=0)
        np.testing.assert_allclose(
            fast.predict(one)[0], [b.predict(one, num_threads=1)[0] for b in boosters],
            rtol=1e-12, atol=0)


def test_unseen_and_null_stores_score_as_missing(world: tuple[pd.DataFrame, FeatureSpec]
                                                 ) -> None:
    """An unseen store and a null one are both NaN: the same scores, never some level's."""
    frame, spec = world
    booster = fit_response(build_matrix(frame, spec), np.zeros(len(frame), dtype=int),
                           frame["converted"].to_numpy(), n_arms=1,
                           params=replace(PARAMS, categorical=spec.categorical_columns), seed=5)
    rows = build_matrix(pd.DataFrame({"store": ["nowhere", None, spec.features[0].levels[0]],
                                      "age": [40.0] * 3}), spec)
    assert np.isnan(rows[:2, 0]).all() and rows[2, 0] == 0
    scores = booster.predict(np.hstack([rows, np.ones((3, 1), dtype=np.float32)]))
    assert scores[0] == scores[1]


def test_a_saved_policy_keeps_the_encoding_and_an_old_spec_loads_one_hot(
        world: tuple[pd.DataFrame, FeatureSpec], tmp_path: Path) -> None:
    frame, spec = world
    X = build_matrix(frame, spec)
    params = replace(PARAMS, n_estimators=10, categorical=spec.categorical_columns)
    model = fit_learner("t", X, frame["treatment"].to_numpy(dtype=object),
                        frame["converted"].to_numpy(), np.full(len(frame), 1 / 3),
                        control_label="control", params=params, seed=6)
    assert isinstance(model, UpliftModel) and model.control is not None
    catalog = Catalog(offers=(Offer(offer_id="event", name="E", category="t", margin=10.0),
                              Offer(offer_id="flat", name="F", category="t", margin=10.0)))
    policy = Policy(spec, catalog, model, model.control, model.control,
                    population_uplift=np.array([0.03, 0.02]))
    policy.save(tmp_path / "policy")
    again = Policy.load(tmp_path / "policy")
    assert again.spec == spec
    np.testing.assert_array_equal(again.score(X[:200])[0], policy.score(X[:200])[0])

    # a policy.json written before encodings existed: its categoricals are one-hot
    document = json.loads((tmp_path / "policy" / "policy.json").read_text())
    document["spec"] = [{"name": "store", "kind": "categorical", "levels": ["s000", "s001"]},
                        {"name": "age", "kind": "numeric", "levels": []}]
    (tmp_path / "policy" / "policy.json").write_text(json.dumps(document))
    old = Policy.load(tmp_path / "policy").spec
    assert old.features[0].encoding == "one_hot" and old.width == 3
    assert old.matrix_names == ["store=s000", "store=s001", "age"]
    assert old.categorical_columns == ()

    # an encoding from a later version is refused, never scored as something else
    document["spec"][0]["encoding"] = "hashed"
    (tmp_path / "policy" / "policy.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="unsupported feature encoding"):
        Policy.load(tmp_path / "policy")


def test_booster_params_pass_the_categorical_columns() -> None:
    params = BoosterParams(categorical=(2, 5))
    assert params.as_lightgbm(1)["categorical_column"] == [2, 5]
    assert params.shifted(1).as_lightgbm(1)["categorical_column"] == [3, 6]
    assert "categorical_column" not in BoosterParams().as_lightgbm(1)  # unchanged by default


def test_a_run_logs_the_categorical_columns_it_fitted_with(
        world: tuple[pd.DataFrame, FeatureSpec]) -> None:
    """The params MLflow and the Dask policy's meta record name the level-code column."""
    _, spec = world
    assert fitted_params(TrainSettings(params=PARAMS), spec)["categorical"] == (0,)
    assert TrainSettings(params=PARAMS).params.categorical == ()  # the settings are unchanged
