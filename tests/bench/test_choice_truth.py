"""The choice rules of bench/choice_truth.py (issue 12's tenth round, not adopted), on per-row
DR terms whose answer is known."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import choice_truth as ct  # noqa: E402

from training import select  # noqa: E402
from training.select import Candidate  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402

MENU3 = [Candidate("s", "low", "best_single"), Candidate("s", "low", "confident"),
         Candidate("s", "low", "full")]


def test_argmax_choice_is_the_one_training_makes_from_the_menu_table():
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(400), 2)
    terms = rng.normal([[0.0], [0.05], [0.08]], 1.0, (3, 800))
    table = pd.DataFrame({"candidate": [c.name for c in MENU3]})
    table["gap_to_best"], table["gap_se"] = select.gaps_to_best(
        dict(zip(table["candidate"], terms, strict=True)), list(table["candidate"]), clusters)
    assert ct.choose_by_evidence(terms, clusters, MENU3, "argmax") \
        == select.choose(table, MENU3) == MENU3[int(np.argmax(terms.mean(axis=1)))]
    # identical terms tie: the simplest
    twins = np.vstack([terms[2], terms[2], terms[2]])
    for choice in ct.CHOICES:
        assert ct.choose_by_evidence(twins, clusters, MENU3, choice) == MENU3[0]
    with pytest.raises(ValueError, match="unknown choice"):
        ct.choose_by_evidence(terms, clusters, MENU3, "vote")


def test_bagged_choice_keeps_a_lead_held_on_every_customer_and_splits_twin_votes():
    rng = np.random.default_rng(0)
    clusters = np.arange(2_000)
    base = rng.normal(0.0, 1.0, 2_000)
    ahead = np.vstack([base, base + 0.01, base - 0.01])  # confident leads on every row
    assert ct.bagged_choice(ahead, clusters, MENU3, seed=0) == MENU3[1]
    # `confident` and `full` are near-twins sharing one noise e whose mean is 0.2 SE above 0:
    # the argmax picks a twin, but over resamples e is below 0 about 42% of the time (the
    # single offer wins) and the twins split the other 58%: the single offer is most frequent
    e = rng.normal(0.0, 1.0, 2_000)
    e += 0.2 / np.sqrt(2_000) - e.mean()
    own = rng.normal(0.0, 0.05, (2, 2_000))
    own += np.array([[-1e-4], [1e-4]]) - own.mean(axis=1, keepdims=True)
    twins = np.vstack([base, base + e + own[0], base + e + own[1]])
    assert ct.choose_by_evidence(twins, clusters, MENU3, "argmax") == MENU3[2]
    assert ct.bagged_choice(twins, clusters, MENU3, seed=0) == MENU3[0]
    assert ct.cluster_sums(twins, clusters).shape == (2_000, 3)


def test_eb_shrunk_gains_are_the_moment_formula():
    rng = np.random.default_rng(1)
    clusters = np.arange(500)
    gains = np.vstack([np.zeros(500), rng.normal(0.3, 1.0, 500), rng.normal(0.05, 2.0, 500)])
    shrunk = ct.eb_shrunk_gains(gains, clusters)
    means = gains.mean(axis=1)
    var = np.array([0.0, *(np.var(g, ddof=1) / 500 for g in gains[1:])])
    tau2 = max(0.0, np.mean(means[1:] ** 2 - var[1:]))
    assert shrunk[0] == 0.0
    assert shrunk[1:] == pytest.approx(means[1:] * tau2 / (tau2 + var[1:]))
    # pure noise around the baseline: nothing left after shrinkage, the single offer is kept
    noise = np.vstack([np.zeros(500), rng.normal(0.0, 1.0, 500) * 0.01,
                       rng.normal(0.0, 1.0, 500) * 0.01])
    noise[1:] -= noise[1:].mean(axis=1, keepdims=True) - np.array([[1e-5], [-1e-5]])
    assert ct.eb_shrunk_gains(noise, clusters) == pytest.approx(np.zeros(3))
    assert ct.choose_by_evidence(noise, clusters, MENU3, "eb_shrunk") == MENU3[0]


def test_eb_posterior_keeps_well_measured_gains_and_pools_noisy_ones():
    rng = np.random.default_rng(2)
    clusters = np.arange(4_000)
    common = rng.normal(0.0, 1.0, 4_000)
    # well measured and far apart: the posterior means are the estimates
    apart = np.vstack([np.zeros(4_000), 1.0 + 0.01 * common, 2.0 + 0.01 * rng.normal(
        0.0, 1.0, 4_000)])
    assert ct.eb_posterior_gains(apart, clusters) == pytest.approx(
        apart.mean(axis=1), abs=1e-3)
    # one shared noise and two tiny differences between the candidates: their difference is
    # well measured even though their level is not, so the order is kept, unlike eb_shrunk
    level = np.vstack([np.zeros(4_000), 0.02 + common, 0.03 + common])
    posterior = ct.eb_posterior_gains(level, clusters)
    assert posterior[2] > posterior[1]
    assert posterior[2] - posterior[1] == pytest.approx(0.01, abs=2e-3)
    with pytest.raises(ValueError, match="best_single"):
        ct.choose_by_evidence(level, clusters, MENU3[1:] + MENU3[1:2], "eb_posterior")


def test_a_cached_menu_is_stale_once_any_setting_it_was_scored_with_changes(tmp_path):
    base = TrainSettings(params=BoosterParams(n_estimators=100, n_jobs=1))
    path = ct.cache_path(tmp_path, "design", "smooth", 0, 100)
    assert path.name == "design-smooth-0-100.npz"
    assert not ct.is_current(path, base)  # no file yet
    np.savez_compressed(path, settings=np.array(ct.fingerprint(base)))
    assert ct.is_current(path, base)
    assert ct.is_current(path, replace(base, seed=7))  # the seed is in the file name
    for changed in (replace(base, params=BoosterParams(n_estimators=100, num_leaves=7, n_jobs=1)),
                    replace(base, capacities=("low",)), replace(base, learners=("s",)),
                    replace(base, rules=("best_single", "full")),
                    replace(base, select_rows_per_arm=500), replace(base, contact_z=None)):
        assert not ct.is_current(path, changed)
    np.savez_compressed(path, clusters=np.array(["c1", "c2"]))  # an older cache: no settings
    assert not ct.is_current(path, base)
