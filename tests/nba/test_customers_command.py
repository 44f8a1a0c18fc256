"""`nba customers load / show` (nba/commands/customers.py) against a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import io
from nba.cli import main
from state import open_store


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.parquet"
    io.write_parquet(pd.DataFrame({"customer_id": ["a", "b"], "recency_days": [3, None],
                                   "contactable": [True, False]}), path)
    return path


def test_load_then_if_empty_keeps_what_is_there(tmp_path: Path, customers_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert main(["customers", "load", str(customers_file), "--state-url", url]) == 0
    io.write_parquet(pd.DataFrame({"customer_id": ["z"]}), customers_file)
    assert main(["customers", "load", str(customers_file), "--if-empty",
                 "--state-url", url]) == 0
    assert "already holds 2 customer profiles" in capsys.readouterr().out

    with open_store(url) as store:
        assert store.profiles.get("b") == {"recency_days": None, "contactable": False}


def test_a_bad_file_names_file_and_column_and_loads_nothing(
        tmp_path: Path, customers_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    io.write_parquet(pd.DataFrame({"customer_id": ["a", "a"]}), customers_file)

    assert main(["customers", "load", str(customers_file), "--state-url", url]) == 2

    err = capsys.readouterr().err
    assert "customers.parquet" in err and "customer_id" in err
    with open_store(url) as store:
        assert store.profiles.count() == 0


def test_events_load_applies_each_event_once_and_names_a_bad_row(
        tmp_path: Path, customers_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert main(["customers", "load", str(customers_file), "--state-url", url]) == 0
    events = tmp_path / "events.parquet"
    at = pd.Timestamp("2026-03-01T12:00:00Z")
    io.write_parquet(pd.DataFrame({
        "event_id": ["e1", "e2"], "customer_id": ["a", "new"],
        "type": ["consent", "sign_up"], "occurred_at": [at, at],
        "contactable": [False, None]}), events)

    assert main(["events", "load", str(events), "--state-url", url]) == 0
    assert main(["events", "load", str(events), "--state-url", url]) == 0
    assert "0 events applied, 2 already applied" in capsys.readouterr().out
    with open_store(url) as store:
        assert store.profiles.get("a")["contactable"] is False  # type: ignore[index]
        assert store.profiles.get("new") is not None

    io.write_parquet(pd.DataFrame({"event_id": ["e3"], "customer_id": ["a"],
                                   "type": ["purchase"], "occurred_at": [at],
                                   "amount": [-5.0]}), events)
    assert main(["events", "load", str(events), "--state-url", url]) == 2
    assert "events.parquet: row 1, column amount" in capsys.readouterr().err


def test_export_training_marks_decisions_for_customers_without_a_profile_new(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from nba import demo
    from state.log import NEW_CUSTOMER_SEGMENT, DecisionRecord

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    io.write_catalog(demo.demo_catalog(datetime.now(UTC)), data_dir / io.OFFERS)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    now = datetime.now(UTC)
    with open_store(url) as store:
        store.log.record(DecisionRecord("d1", now, "C1", "web", "1", ("sitewide_10_off",),
                                        features={"recency_days": 3}, segment="gold"))
        store.log.record(DecisionRecord("d0", now, "C2", "web", "1", (), holdout=True,
                                        features={"recency_days": 9}, segment="gold"))
        store.log.record(DecisionRecord("d2", now, "walk-in", "web", "1",
                                        ("first_purchase_gift",), features={},
                                        segment=NEW_CUSTOMER_SEGMENT))
    out = tmp_path / "exposures.parquet"

    assert main(["export-training", "--state-url", url, "--data-dir", str(data_dir),
                 "--out", str(out)]) == 0

    assert "1 decisions for customers without a profile marked new_customer" in (
        capsys.readouterr().out)
    exported = io.read_exposures(out, io.read_catalog(data_dir / io.OFFERS))
    assert sorted(exported["treatment"]) == ["control", "first_purchase_gift",
                                             "sitewide_10_off"]
    assert exported.set_index("customer_id")["new_customer"].to_dict() == {
        "C1": False, "C2": False, "walk-in": True}
