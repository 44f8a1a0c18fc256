"""Incrementality against the holdout: hand-computed answers, a known-truth simulation, SRM,
PostgreSQL, and the HTTP route."""

from __future__ import annotations

import math
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from reports import ReportError
from reports.incrementality import (
    ALL,
    NONE_GROUP,
    group_lift,
    incrementality,
    per_decision,
    srm_check,
)
from state import StateStore, open_store
from stats import Z95
from tests.reports import CATALOG, T0, decision, event, simulate, write


def known_log(store: StateStore) -> None:
    """Offer A: 4 treated (revenue 30, 10, 0, 0), 4 holdout (20, 0, 0, 0); offer B: 2 treated,
    no holdout; one decision with nothing to send. Channels and segments vary."""
    write(store, [
        decision("t1", channel="web", segment="gold"),
        decision("t2", channel="web", segment="gold"),
        decision("t3", channel="email", segment="silver"),
        decision("t4", channel="email", segment=None),
        decision("h1", holdout=True, channel="web", segment="gold"),
        decision("h2", holdout=True, channel="web", segment="silver"),
        decision("h3", holdout=True, channel="email", segment="silver"),
        decision("h4", holdout=True, channel="email", segment="gold"),
        decision("b1", chosen="B", channel="app"),
        decision("b2", chosen="B", channel="app"),
        decision("n1", chosen=None, channel="web"),
    ], [
        # t1 bought twice (its offer and something else): one conversion, revenue 25 + 5
        event("t1", "shown"), event("t1", "accepted"), event("t1", revenue=25.0),
        event("t1", revenue=5.0, offer_id=None),
        event("t2", revenue=10.0, offer_id="B"),  # a purchase of another offer still counts
        event("t3", "shown"), event("t3", "declined"),
        event("h1", revenue=20.0, offer_id=None),  # holdout purchases carry no offer
        event("b1", "shown"),
    ])


@pytest.fixture
def frames(store: StateStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The known log, read back as the report reads it."""
    known_log(store)
    return store.log.decisions_frame(), store.log.outcomes_frame()


def test_offer_row_matches_hand_computed_answers(frames):
    report = incrementality(*frames, CATALOG, by="offer", holdout_share=0.05)
    assert [r.group for r in report.rows] == ["A", "B", NONE_GROUP, ALL]
    a = report.row("A")
    assert (a.n_treated, a.n_holdout) == (4, 4)
    assert (a.conversion_treated, a.conversion_holdout) == (0.5, 0.25)
    # Newcombe's hybrid score interval of 2/4 - 1/4, as statsmodels computes it
    low, high = confint_proportions_2indep(2, 4, 1, 4, method="newcomb", compare="diff")
    assert a.conversion_lift.value == pytest.approx(0.25)
    assert (a.conversion_lift.low, a.conversion_lift.high) == pytest.approx((low, high))
    # relative: log(0.5 / 0.25) with se^2 = (1-.5)/(4*.5) + (1-.25)/(4*.25) = 0.25 + 0.75 = 1
    assert a.conversion_relative_lift.value == pytest.approx(1.0)
    assert a.conversion_relative_lift.low == pytest.approx(2 * math.exp(-Z95) - 1)
    assert a.conversion_relative_lift.high == pytest.approx(2 * math.exp(Z95) - 1)
    # revenue per decision: treated [30, 10, 0, 0] mean 10 var 200; holdout [20, 0, 0, 0]
    # mean 5 var 100; se^2 = 200/4 + 100/4 = 75; Welch df = 75^2 / (50^2/3 + 25^2/3) = 5.4
    assert (a.revenue_treated, a.revenue_holdout) == (10.0, 5.0)
    half = stats.t.ppf(0.975, 5.4) * math.sqrt(75)
    assert a.revenue_lift.value == pytest.approx(5.0)
    assert a.revenue_lift.low == pytest.approx(5.0 - half)
    assert a.revenue_lift.high == pytest.approx(5.0 + half)
    # money: revenue lift x 4 treated; conversion lift 0.25 x margin 20 x 4 treated; cost 1 x 4
    assert a.incremental_revenue.value == pytest.approx(20.0)
    assert a.incremental_revenue.low == pytest.approx(4 * (5.0 - half))
    assert a.incremental_margin.value == pytest.approx(20.0)
    assert a.incremental_margin.low == pytest.approx(80 * a.conversion_lift.low)
    assert a.incremental_margin.high == pytest.approx(80 * a.conversion_lift.high)
    assert a.contact_cost == 4.0
    assert a.roi.value == pytest.approx((20.0 - 4.0) / 4.0)
    assert a.roi.low == pytest.approx((a.incremental_margin.low - 4) / 4)


def test_groups_without_a_holdout_or_a_cost_have_no_lift_or_roi(frames):
    report = incrementality(*frames, CATALOG)
    b = report.row("B")
    assert (b.n_treated, b.n_holdout, b.conversion_treated) == (2, 0, 0.0)
    assert b.conversion_holdout is None and b.conversion_lift is None
    assert b.incremental_margin is None and b.roi is None
    assert b.contact_cost == 1.0  # 0.5 per contact x 2
    none = report.row(NONE_GROUP)
    assert none.contact_cost == 0.0 and none.roi is None  # nothing sent costs nothing


def test_a_holdout_without_conversions_is_not_a_significant_lift(store):
    """0 of 7 holdout decisions converted: the Wald interval had zero width in that arm and
    starred the lift; the score interval stays wide and the other intervals are withheld."""
    treated = [decision(f"t{i}") for i in range(200)]
    held = [decision(f"h{i}", holdout=True) for i in range(7)]
    write(store, treated + held, [event(f"t{i}", revenue=50.0) for i in range(13)])
    report = incrementality(store.log.decisions_frame(), store.log.outcomes_frame(), CATALOG)
    a = report.row("A")
    assert a.conversion_lift.value == pytest.approx(13 / 200)
    assert a.conversion_lift.low < 0 < a.conversion_lift.high  # the old one was [+3.4, +9.2] pp
    assert a.incremental_margin.low < 0 < a.incremental_margin.high
    assert a.roi is not None and a.roi.low < 0 < a.roi.high  # was "+59 *"
    assert a.revenue_lift is None and a.conversion_relative_lift is None
    assert a.too_small is not None and "holdout arm has 0 conversions in 7" in a.too_small
    assert any(note.startswith("A: holdout arm has 0") for note in report.notes)


def test_all_row_is_every_treated_against_every_holdout_decision(frames):
    total = incrementality(*frames, CATALOG).total
    assert (total.n_treated, total.n_holdout) == (7, 4)
    assert total.conversion_treated == pytest.approx(2 / 7)
    assert total.revenue_treated == pytest.approx(40 / 7)
    assert total.contact_cost == pytest.approx(4 * 1.0 + 2 * 0.5)
    # margin-weighted conversion: treated 20 + 20 (t1, t2 chose A) over 7; holdout 20 over 4
    assert total.incremental_margin.value == pytest.approx((40 / 7 - 20 / 4) * 7)


@pytest.mark.parametrize(("by", "groups", "treated", "holdout"), [
    ("channel", ["app", "email", "web", ALL], [2, 2, 3, 7], [0, 2, 2, 4]),
    ("segment", ["gold", "silver", NONE_GROUP, ALL], [5, 1, 1, 7], [2, 2, 0, 4]),
])
def test_channel_and_segment_rows_count_every_decision_of_the_group(frames, by, groups,
                                                                     treated, holdout):
    report = incrementality(*frames, CATALOG, by=by)
    assert [r.group for r in report.rows] == groups
    assert [r.n_treated for r in report.rows] == treated
    assert [r.n_holdout for r in report.rows] == holdout
    web = report.rows[groups.index("web")] if by == "channel" else None
    if web is not None:  # t1, t2 (both bought, 30 + 10) and n1 vs h1 (20) and h2
        assert web.conversion_treated == pytest.approx(2 / 3)
        assert web.revenue_lift.value == pytest.approx(40 / 3 - 10)


@pytest.mark.parametrize(("holdout", "total", "share", "chi2"), [
    (50, 1000, 0.05, 0.0),
    (70, 1000, 0.05, 20 ** 2 / 50 + 20 ** 2 / 950),
    (80, 1000, 0.05, 30 ** 2 / 50 + 30 ** 2 / 950),
    (4, 11, 0.05, 3.45 ** 2 / 0.55 + 3.45 ** 2 / 10.45),
])
def test_srm_chi_square_matches_hand_computation(holdout, total, share, chi2):
    flags = pd.Series([True] * holdout + [False] * (total - holdout))
    check = srm_check(flags, pd.Series([f"c{i}" for i in range(total)]), share)
    p = math.erfc(math.sqrt(chi2 / 2))  # chi-square survival function with 1 df
    assert check.chi2 == pytest.approx(chi2)
    assert check.p_value == pytest.approx(p)
    assert check.mismatch is (p < 0.001)
    assert check.observed_share == pytest.approx(holdout / total)


def test_srm_is_flagged_prominently(frames):
    report = incrementality(*frames, CATALOG, holdout_share=0.05)
    assert report.srm.mismatch  # 4 of 11 decisions held out where 5% was configured
    assert report.srm.message().startswith("SAMPLE RATIO MISMATCH")
    body = report.to_dict()
    assert list(body)[:3] == ["by", "holdout_share", "srm"] and body["srm"]["mismatch"]


def test_srm_counts_customers_too():
    # one customer with 40 decisions in the holdout: decisions look off, customers do not
    flags = pd.Series([True] * 40 + [False] * 760)
    customers = pd.Series(["c0"] * 40 + [f"c{i}" for i in range(1, 761)])
    check = srm_check(flags, customers, 0.05)
    assert (check.n_customers, check.n_holdout_customers) == (761, 1)
    assert not check.mismatch and check.customer_mismatch
    assert "MISMATCHED OVER CUSTOMERS" in check.message()


def test_simulation_with_known_lift_is_covered_and_excludes_zero(store):
    records, outcomes = simulate(20_000, p_treated=0.12, p_holdout=0.08, share=0.05, seed=3,
                                 basket=50.0)
    write(store, records, outcomes)
    report = incrementality(store.log.decisions_frame(), store.log.outcomes_frame(), CATALOG,
                            holdout_share=0.05)
    a = report.row("A")
    assert not report.srm.mismatch
    assert a.conversion_lift.low < 0.04 < a.conversion_lift.high
    assert a.conversion_lift.low > 0
    assert a.conversion_relative_lift.low < 0.5 < a.conversion_relative_lift.high
    assert a.revenue_lift.low < 0.04 * 50 < a.revenue_lift.high
    assert a.revenue_lift.low > 0
    assert a.incremental_margin.low < 0.04 * 20 * a.n_treated < a.incremental_margin.high


def test_intervals_cover_the_truth_about_95_percent_of_the_time():
    """Coverage over 300 seeded replications of the pure per-decision computation."""
    rng = np.random.default_rng(20250301)
    n, share, p_t, p_h, basket = 3000, 0.2, 0.12, 0.08, 50.0
    hits = np.zeros(3)
    reps = 300
    for _ in range(reps):
        held = rng.random(n) < share
        bought = rng.random(n) < np.where(held, p_h, p_t)
        revenue = np.where(bought, rng.gamma(2.0, basket / 2, n), 0.0)
        frame = pd.DataFrame({"holdout": held, "converted": bought.astype(float),
                              "revenue": revenue, "margin": 20.0, "cost": 1.0})
        row = group_lift("A", frame)
        hits += [row.conversion_lift.low < p_t - p_h < row.conversion_lift.high,
                 row.conversion_relative_lift.low < p_t / p_h - 1
                 < row.conversion_relative_lift.high,
                 row.revenue_lift.low < (p_t - p_h) * basket < row.revenue_lift.high]
    coverage = hits / reps
    assert np.all((coverage > 0.91) & (coverage < 0.985)), coverage


def clustered_log(rng: np.random.Generator, customers: int = 600, visits: int = 8
                  ) -> pd.DataFrame:
    """Customers deciding `visits` times each, with their own propensity (Beta, mean 0.1 held
    out, 0.15 treated): a customer's conversions are correlated. Holdout per customer."""
    held = np.repeat(rng.random(customers) < 0.3, visits)
    base = np.repeat(rng.beta(0.5, 4.5, customers), visits)  # mean 0.1, very uneven
    p = np.clip(np.where(held, base, base * 1.5), 0, 1)
    bought = rng.random(customers * visits) < p
    return pd.DataFrame({"customer_id": np.repeat(np.arange(customers), visits),
                         "holdout": held, "converted": bought.astype(float),
                         "revenue": np.where(bought, 50.0, 0.0), "margin": 20.0, "cost": 1.0})


def test_repeat_customers_get_intervals_clustered_by_customer():
    """Coverage of the true lift over 300 replications: clustered by customer it holds near
    95%; treating every decision as independent it falls far short."""
    rng = np.random.default_rng(7)
    truth = 0.15 - 0.10
    clustered = naive = 0
    reps = 300
    for _ in range(reps):
        frame = clustered_log(rng)
        lift = group_lift("A", frame).conversion_lift
        independent = group_lift("A", frame.drop(columns="customer_id")).conversion_lift
        clustered += lift.low < truth < lift.high
        naive += independent.low < truth < independent.high
        assert lift.high - lift.low > independent.high - independent.low
    assert 0.91 < clustered / reps < 0.985, clustered / reps
    assert naive / reps < 0.85, naive / reps


def test_one_decision_per_customer_gives_the_textbook_intervals(frames):
    decisions, outcomes = frames
    report = incrementality(decisions, outcomes, CATALOG)
    unclustered = group_lift("A", per_decision(decisions, outcomes, CATALOG)
                             .query("chosen_offer == 'A'").drop(columns="customer_id"))
    assert report.row("A").revenue_lift == unclustered.revenue_lift
    assert report.row("A").conversion_lift == unclustered.conversion_lift


def test_an_offer_for_new_customers_has_its_margin_and_cost(store):
    """First visits are decided from `audience: new` offers: the report knows their margin."""
    from features.catalog import Offer

    gift = Offer(offer_id="gift", name="Gift", category="welcome", margin=25.0, cost=2.0,
                 audience="new", prior_uplift=0.05)
    catalog = CATALOG.model_copy(update={"new_customer_offers": (gift,)})
    write(store, [decision("n1", chosen="gift", segment="new_customer"),
                  decision("n2", chosen="gift", segment="new_customer", holdout=True)])
    report = incrementality(store.log.decisions_frame(), store.log.outcomes_frame(), catalog)
    frame = per_decision(store.log.decisions_frame(), store.log.outcomes_frame(), catalog)
    assert frame["margin"].tolist() == [25.0, 25.0] and frame["cost"].tolist() == [2.0, 2.0]
    assert not any("not in the catalog" in note for note in report.notes)


def test_no_holdout_is_a_note_and_an_srm(store):
    write(store, [decision(f"t{i}") for i in range(30)])
    report = incrementality(store.log.decisions_frame(), store.log.outcomes_frame(), CATALOG)
    assert report.total.conversion_lift is None
    assert "no holdout decisions" in report.notes[0]
    assert report.srm.mismatch is False  # 0 of 30 at 5% is still plausible


def test_offers_missing_from_the_catalog_have_unknown_money(store):
    write(store, [decision("t1", chosen="Z"), decision("h1", chosen="Z", holdout=True)])
    report = incrementality(store.log.decisions_frame(), store.log.outcomes_frame(), CATALOG)
    z = report.row("Z")
    assert z.incremental_margin is None and z.contact_cost is None and z.roi is None
    assert "'Z'" in report.notes[0]


def test_empty_log_and_bad_arguments_raise(store):
    empty = store.log.decisions_frame()
    with pytest.raises(ReportError, match="no decisions"):
        incrementality(empty, store.log.outcomes_frame(), CATALOG)
    write(store, [decision("t1")])
    frames = store.log.decisions_frame(), store.log.outcomes_frame()
    with pytest.raises(ValueError, match="unknown grouping 'model'"):
        incrementality(*frames, CATALOG, by="model")
    with pytest.raises(ValueError, match="holdout share"):
        incrementality(*frames, CATALOG, holdout_share=1.0)


def test_since_window_reads_only_later_decisions(store):
    write(store, [decision("old", at=T0 - timedelta(days=3)), decision("new"),
                  decision("h", holdout=True)])
    decisions = store.log.decisions_frame(T0 - timedelta(days=1))
    report = incrementality(decisions, store.log.outcomes_frame(T0 - timedelta(days=1)),
                            CATALOG)
    assert report.total.n_treated == 1


def test_frame_and_json_are_flat_and_finite(frames):
    report = incrementality(*frames, CATALOG)
    frame = report.to_frame()
    assert list(frame["group"]) == ["A", "B", NONE_GROUP, ALL]
    assert {"conversion_lift", "conversion_lift_low", "conversion_lift_high", "roi_high",
            "incremental_revenue_low", "contact_cost"} <= set(frame.columns)
    assert frame.loc[frame["group"] == "B", "conversion_lift_low"].isna().all()
    import json

    text = json.dumps(report.to_dict(), allow_nan=False)  # NaN/inf would not be JSON
    assert '"group": "A"' in text


@pytest.mark.parametrize("backend", ["postgresql"])
def test_same_answers_from_postgresql(store_url, frames):
    with open_store(store_url) as pg:
        known_log(pg)
        pg_frames = pg.log.decisions_frame(), pg.log.outcomes_frame()
    for by in ("offer", "channel", "segment"):
        on_pg = incrementality(*pg_frames, CATALOG, by=by)
        on_sqlite = incrementality(*frames, CATALOG, by=by)
        assert on_pg.srm == on_sqlite.srm
        pd.testing.assert_frame_equal(on_pg.to_frame(), on_sqlite.to_frame())


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def client(store: StateStore):
    """The reports blueprint on a bare app with the real store and the test catalog."""
    from service import reports_api
    from service.auth import KeyRing
    from service.errors import register_error_handlers
    from service.live import LiveStateHandle
    from service.settings import ServiceSettings

    app = Flask(__name__)
    register_error_handlers(app)
    model = SimpleNamespace(policy=SimpleNamespace(catalog=CATALOG))
    app.extensions["nba.model_store"] = SimpleNamespace(current=lambda: model)
    app.extensions["nba.settings"] = ServiceSettings(holdout_share=0.05)
    app.extensions["nba.keys"] = KeyRing([], dev_mode=True)  # roles: tests/service/test_auth.py
    app.extensions["nba.state"] = LiveStateHandle(store.url, store)
    app.register_blueprint(reports_api.bp)
    return app.test_client()


def test_api_returns_the_report_as_json(client, store):
    known_log(store)
    response = client.get("/v1/reports/incrementality?by=channel&since=2025-03-01")
    assert response.status_code == 200
    body = response.get_json()
    assert body["by"] == "channel" and body["since"] == "2025-03-01T00:00:00+00:00"
    assert body["srm"]["mismatch"] is True and "SAMPLE RATIO MISMATCH" in body["srm"]["message"]
    assert [g["group"] for g in body["groups"]] == ["app", "email", "web", "all"]
    offer = client.get("/v1/reports/incrementality").get_json()
    a = offer["groups"][0]
    assert a["group"] == "A" and a["conversion_lift"]["value"] == pytest.approx(0.25)


@pytest.mark.parametrize(("query", "parameter"), [
    ("by=model", "by"), ("since=yesterday", "since"), ("by=offer&since=2025-13-01", "since"),
    # valid ISO 8601, but outside datetime's range once in UTC (was an OverflowError, a 500)
    ("since=9999-12-31T23:00:00-05:00", "since"), ("since=0001-01-01T00:00:00%2B05:00", "since"),
])
def test_api_rejects_bad_parameters_by_name(client, query, parameter):
    response = client.get(f"/v1/reports/incrementality?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert f"'{parameter}'" in error["message"] and error["details"]["parameter"] == parameter


def test_api_says_when_no_decision_matches(client, store):
    known_log(store)
    response = client.get("/v1/reports/incrementality?since=2030-01-01T00:00:00Z")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "no_decisions"
