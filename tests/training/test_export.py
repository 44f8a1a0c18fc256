"""The decision log exported as training data: known answers, and the data contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import io
from features.build import infer_spec
from features.customers import CustomerTable
from features.schema import CONTEXT_COLUMNS, feature_columns
from nba import demo
from state import DecisionRecord, Outcome, open_store
from training.export import CONTRACT_COLUMNS, MIN_PROPENSITY, export_training

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
A, B = "sitewide_10_off", "denim_bundle"


def decision(decision_id: str, minute: int, offer_ids: list[str], *, holdout: bool = False,
             propensity: float = 0.8, features: dict | None = None) -> dict:
    """One row as DecisionLog.decisions_frame returns it (JSON columns decoded)."""
    return {"decision_id": decision_id, "decided_at": T0 + timedelta(minutes=minute),
            "customer_id": f"C{decision_id}", "channel": "web", "model_version": "1",
            "holdout": holdout, "explored": False,
            "chosen_offer": offer_ids[0] if offer_ids else None, "propensity": propensity,
            "offer_ids": offer_ids, "candidates": [], "suppressed": {},
            "features": features if features is not None else {
                "recency_days": minute, "monetary": 10.5 * minute, "channel": "web",
                "newbie": minute % 2 == 0},
            "segment": None}


def outcome(decision_id: str, offer_id: str | None, event: str, revenue: float = 0.0) -> dict:
    return {"decision_id": decision_id, "offer_id": offer_id, "event": event,
            "revenue": revenue, "occurred_at": T0}


@pytest.fixture
def log_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    decisions = pd.DataFrame([
        decision("1", 1, [A, B], propensity=0.76),             # served, bought the offer
        decision("2", 2, [], holdout=True, propensity=0.05),   # holdout, bought anyway
        decision("3", 3, [], propensity=0.96),                 # nothing worth sending
        decision("4", 4, [B], propensity=0.02),                # explored, declined
        decision("5", 5, [A], propensity=0.0),                 # a logged 0: clipped
        decision("6", 6, [B, A], propensity=0.81),             # two purchases, one organic
    ])
    outcomes = pd.DataFrame([
        outcome("1", A, "shown"), outcome("1", A, "accepted"),
        outcome("1", A, "purchased", 50.0),
        outcome("2", None, "purchased", 20.0),
        outcome("4", B, "shown"), outcome("4", B, "declined"),
        outcome("6", B, "purchased", 15.0), outcome("6", None, "purchased", 10.25),
    ])
    return decisions, outcomes


def test_one_row_per_decision_with_known_answers(log_frames):
    frame = export_training(*log_frames, control_label="control")
    assert list(frame.columns[:6]) == list(CONTRACT_COLUMNS)
    assert frame["customer_id"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert frame["treatment"].tolist() == [A, "control", "control", B, A, B]
    assert frame["converted"].tolist() == [1, 1, 0, 0, 0, 1]
    assert frame["revenue"].tolist() == [50.0, 20.0, 0.0, 0.0, 0.0, 25.25]
    assert frame["propensity"].tolist() == [0.76, 0.05, 0.96, 0.02, MIN_PROPENSITY, 0.81]
    assert frame["exposed_at"].tolist() == [pd.Timestamp(T0 + timedelta(minutes=m))
                                            for m in range(1, 7)]


def test_features_get_back_the_types_json_lost(log_frames):
    complete = export_training(*log_frames, control_label="control")
    assert complete["recency_days"].dtype == np.int64 and complete["newbie"].dtype == bool
    decisions, outcomes = log_frames[0].copy(), log_frames[1]
    decisions.at[2, "features"] = {"recency_days": None, "monetary": None, "channel": None,
                                   "newbie": None}
    frame = export_training(decisions, outcomes, "control")
    assert frame["recency_days"].dtype == "Int64" and frame["recency_days"].isna().sum() == 1
    assert frame["monetary"].dtype == np.float64 and frame["monetary"].iloc[3] == 42.0
    assert frame["newbie"].dtype == "boolean"
    assert frame["channel"].isna().sum() == 1 and frame["channel"].iloc[0] == "web"


def test_a_holdout_is_control_even_if_it_logged_the_offer_it_would_have_had():
    decisions = pd.DataFrame([decision("1", 1, [A], holdout=True, propensity=0.05)])
    frame = export_training(decisions, pd.DataFrame([outcome("1", None, "purchased", 9.0)]),
                            "hold")
    assert frame["treatment"].tolist() == ["hold"] and frame["converted"].tolist() == [1]


def test_an_empty_log_exports_an_empty_frame_with_the_contract_columns():
    decisions = pd.DataFrame(columns=["decision_id", "decided_at", "customer_id", "holdout",
                                      "propensity", "offer_ids", "features"])
    outcomes = pd.DataFrame(columns=["decision_id", "offer_id", "event", "revenue"])
    frame = export_training(decisions, outcomes, "control")
    assert frame.empty and list(frame.columns) == list(CONTRACT_COLUMNS)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d, o: (d.drop(columns="propensity"), o), "lacks column"),
    (lambda d, o: (d, o.drop(columns="event")), "lacks column"),
    (lambda d, o: (d.assign(features=[{"x": 1}, {"x": "one"}, {}, {}, {}, {}]), o),
     "feature 'x' mixes types"),
])
def test_bad_frames_are_refused_with_the_reason(log_frames, change, message):
    with pytest.raises(ValueError, match=message):
        export_training(*change(*log_frames), control_label="control")


def test_the_real_log_round_trips_through_the_data_contract(tmp_path):
    """Decisions logged as the service logs them read back as exposures of the same schema."""
    data = demo.generate(300, 600, seed=5)
    io.write_parquet(data.exposures, tmp_path / io.EXPOSURES)
    kinds = feature_columns(pq.read_schema(tmp_path / io.EXPOSURES), io.EXPOSURES)
    spec = infer_spec(data.exposures, kinds)
    table = CustomerTable.from_frame(data.customers, spec, lambda m: np.zeros(len(m)))
    offers = data.catalog.offer_ids
    records = [DecisionRecord(
        decision_id=f"d{row}", decided_at=T0 + timedelta(seconds=row),
        customer_id=table.ids[row], channel="web", model_version="1",
        offer_ids=() if row % 4 == 0 else (offers[row % len(offers)],),
        holdout=row % 8 == 0, propensity=0.05 if row % 8 == 0 else 0.5,
        features=table.feature_row(row)) for row in range(40)]
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.log.record_many(records)
        store.log.record_outcome(Outcome("d1", offers[1], "purchased", 30.0, T0))
        store.log.record_outcome(Outcome("d8", None, "purchased", 12.5, T0))
        frame = export_training(store.log.decisions_frame(), store.log.outcomes_frame(),
                                data.catalog.control_label)
    io.write_parquet(frame, tmp_path / "log.parquet")
    read = io.read_exposures(tmp_path / "log.parquet", data.catalog)
    assert len(read) == 40
    assert feature_columns(pq.read_schema(tmp_path / "log.parquet"), "log.parquet") == kinds
    assert (read["treatment"] == "control").sum() == 10  # every 4th row served nothing
    assert read.set_index("customer_id").loc[table.ids[1], "revenue"] == 30.0
    assert read.set_index("customer_id").loc[table.ids[8], "converted"] == 1
    logged = data.customers.set_index("customer_id").loc[table.ids[:40]]
    for name, _ in kinds:
        if name in CONTEXT_COLUMNS:  # no request context in these records: null, typed
            assert read[name].isna().all(), name
            continue
        assert read[name].tolist() == logged[name].tolist(), name
