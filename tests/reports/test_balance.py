"""Covariate balance of holdout and treated customers: known SMDs, random and biased splits."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from reports import ReportError
from reports.balance import balance, standardized_mean_difference
from state import StateStore
from tests.reports import T0, decision, write


def report_of(store: StateStore):
    return balance(store.log.decisions_frame())


def customers(n: int, *, seed: int, bias: float = 0.0, share: float = 0.5):
    """`n` customers' decisions; with `bias` the holdout is richer and more often gold."""
    rng = np.random.default_rng(seed)
    held = rng.random(n) < share
    spend = rng.normal(100.0, 20.0, n) + np.where(held, bias * 20.0, 0.0)
    gold = rng.random(n) < np.where(held, 0.3 + bias * 0.2, 0.3)
    return [decision(f"d{i}", customer=f"c{i}", holdout=bool(held[i]),
                     features={"spend_90d": float(spend[i]), "orders": int(rng.poisson(3)),
                               "email_opt_in": bool(rng.random() < 0.6),
                               "tier": "gold" if gold[i] else "silver"})
            for i in range(n)]


def test_smd_matches_hand_computation(store):
    write(store, [
        decision("t1", customer="a", features={"x": 1, "tier": "gold", "vip": True}),
        decision("t2", customer="b", features={"x": 2, "tier": "gold", "vip": False}),
        decision("t3", customer="c", features={"x": 3, "tier": "silver", "vip": False}),
        decision("h1", customer="d", holdout=True, features={"x": 2, "tier": "gold"}),
        decision("h2", customer="e", holdout=True, features={"x": 3, "tier": "silver"}),
        decision("h3", customer="f", holdout=True, features={"x": 4, "tier": "silver"}),
    ])
    report = report_of(store)
    # x: means 2 vs 3, both sample variances 1 -> (2 - 3) / 1
    x = report.row("x")
    assert (x.mean_treated, x.mean_holdout, x.smd) == (2.0, 3.0, -1.0)
    # tier=gold: 2/3 vs 1/3, both variances 1/3 -> (1/3) / sqrt(1/3)
    assert report.row("tier=gold").smd == pytest.approx((1 / 3) / math.sqrt(1 / 3))
    assert report.row("tier=silver").smd == pytest.approx(-(1 / 3) / math.sqrt(1 / 3))
    # vip is missing for the holdout: no comparison, no flag
    vip = report.row("vip")
    assert (vip.n_treated, vip.n_holdout, vip.flagged) == (3, 0, False)
    assert math.isnan(vip.smd) and report.rows[-1].feature == "vip"
    assert {r.feature for r in report.flagged} == {"x", "tier=gold", "tier=silver"}


def test_each_customer_counts_once_by_their_first_decision(store):
    write(store, [decision(f"t{i}", customer="same", features={"x": 100 + i},
                           at=T0 + timedelta(minutes=i)) for i in range(5)]
          + [decision("t9", customer="other", features={"x": 0}),
             decision("h1", customer="held", holdout=True, features={"x": 50})])
    report = report_of(store)
    assert (report.n_treated, report.n_holdout) == (2, 1)
    assert report.row("x").mean_treated == 50.0  # (100 + 0) / 2: only the first of "same"


def test_a_random_split_shows_no_flags(store):
    write(store, customers(4000, seed=5))
    report = report_of(store)
    assert report.flagged == ()
    assert {"spend_90d", "orders", "email_opt_in", "tier=gold", "tier=silver"} == \
        {r.feature for r in report.rows}
    assert "looks balanced" in report.summary()


def test_a_biased_split_is_flagged(store):
    write(store, customers(4000, seed=5, bias=0.5))
    report = report_of(store)
    flagged = {r.feature for r in report.flagged}
    assert {"spend_90d", "tier=gold", "tier=silver"} <= flagged
    assert "orders" not in flagged and "email_opt_in" not in flagged
    assert report.rows[0].feature == "spend_90d" and report.rows[0].smd < -0.4


def test_chance_level_warns_about_small_holdouts(store):
    write(store, customers(400, seed=2, share=0.05))
    report = report_of(store)
    assert report.chance_smd > 0.1  # ~20 holdout customers: 0.1 is within noise


def test_constant_features_and_missing_arms():
    assert standardized_mean_difference(np.ones(3), np.ones(4)) == 0.0
    assert standardized_mean_difference(np.ones(3), np.zeros(4)) == math.inf


def test_one_arm_only_raises(store):
    with pytest.raises(ReportError, match="no decisions"):
        report_of(store)
    write(store, [decision("t1", features={"x": 1})])
    with pytest.raises(ReportError, match="no holdout customers"):
        report_of(store)
