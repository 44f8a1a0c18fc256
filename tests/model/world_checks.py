"""Checks shared by the tests of the worlds written blind (fresh, blind, unseen, sealed): a
world is a function of its seed, its data is valid under the data contract and its logged truth
is what the outcomes were drawn from."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import build_matrix, infer_spec
from features.io import exposures_frame
from features.schema import feature_columns
from nba.worlds import HIDDEN, Design, World, generate


def digest(world: World) -> str:
    """A hash of everything a world generates: its exposures, test customers and their uplift."""
    return hashlib.sha256(
        pd.util.hash_pandas_object(world.exposures, index=True).to_numpy().tobytes()
        + pd.util.hash_pandas_object(world.test, index=True).to_numpy().tobytes()
        + world.test_uplift.tobytes()).hexdigest()


def assert_seeded(design: Design, world: World, seed: int) -> None:
    """Assert `design` at `seed` generates `world` again, and another seed another world."""
    assert digest(generate(design, seed)) == digest(world)
    assert digest(generate(design, seed + 1)) != digest(world)


def assert_contract_valid(design: Design, world: World, *, nulls: bool = False) -> pd.DataFrame:
    """Assert `world` (generated from `design`) passes the contract's reader with exactly the
    design's feature columns (no hidden truth column leaks), logs every arm, builds a feature
    matrix of the right width, and that its logged truth is probabilities the outcomes agree
    with (within 4 SE). `nulls`: features may be missing, as NaN exactly where the frame has
    them (LightGBM's missing); else every column is finite and varies. Returns the read frame.
    """
    n_offers = len(design.margins)
    table = pa.Table.from_pandas(world.exposures, preserve_index=False)
    frame = exposures_frame(table, "exposures.parquet", world.catalog)
    assert feature_columns(table.schema, "exposures.parquet") == list(design.columns)
    assert not [c for c in world.test.columns if c.startswith(HIDDEN)]
    assert len(world.exposures) == design.rows_per_arm * (n_offers + 1)
    assert set(frame["treatment"]) == {"control", *world.catalog.offer_ids}

    spec = infer_spec(frame, list(world.columns))
    for rows in (frame, world.test):
        X = build_matrix(rows, spec)
        assert X.shape == (len(rows), spec.width)
        if nulls:  # missing values reach the model as NaN, nothing else is missing
            numeric = [i for i, n in enumerate(spec.matrix_names) if n in rows.columns]
            assert np.array_equal(np.isnan(X[:, numeric]),
                                  rows[[spec.matrix_names[i] for i in numeric]].isna().to_numpy())
            assert np.isfinite(np.delete(X, numeric, axis=1)).all()
        else:
            assert np.isfinite(X).all()
            assert X.std(axis=0).min() > 0  # every column (and every level seen) varies

    truth = world.logged_truth
    assert truth is not None and truth.shape == (len(frame), n_offers + 1)
    assert truth.min() >= 0.0 and truth.max() <= 1.0
    # the outcomes were drawn from that truth: logged conversions match it within 4 SE
    arm = frame["treatment"].map({t: i for i, t in enumerate(["control",
                                                              *world.catalog.offer_ids])})
    expected = truth[np.arange(len(frame)), arm.to_numpy()]
    assert abs(frame["converted"].mean() - expected.mean()) < 4 * np.sqrt(
        (expected * (1 - expected)).sum()) / len(frame)
    assert world.oracle() >= world.best_single() - 1e-9 and world.best_single() >= 0.0
    return frame


def assert_truth_is_probabilities(design: Design) -> None:
    """Assert `design`'s logging and its conversion under every arm are probabilities on 3,000
    of its own customers (with their per-exposure context, if any), without clipping: the
    truth a world is scored against must be exactly what its outcomes are drawn from."""
    assert design.customers is not None and design.base is not None
    rng = np.random.default_rng(4)
    customers = design.customers(3_000, rng)
    if design.context is not None:
        customers = design.context(customers, rng)
    n_offers = len(design.margins)
    probs = (np.full((len(customers), n_offers + 1), 1.0 / (n_offers + 1))
             if design.logging is None else design.logging(customers, n_offers))
    assert probs.shape == (len(customers), n_offers + 1)
    assert np.allclose(probs.sum(axis=1), 1.0) and probs.min() > 0.0
    converted = design.base(customers)[:, None] + design.uplift(customers)
    assert converted.min() >= 0.0 and converted.max() <= 1.0
