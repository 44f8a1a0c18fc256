"""`nba simulate`, `nba export-training` and `nba outcomes load`, run through nba's parser.

The commands live in nba/commands/{simulate,export_training,outcomes}.py; here they run
in-process against the `app` fixture's state store (and, for simulate, over real HTTP).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from werkzeug.serving import make_server

from features import io
from nba import cli
from nba.cli import CliError, build_parser
from nba.commands import export_training, outcomes, simulate
from nba.settings import CliSettings
from state import DecisionRecord
from tests.conftest import STAFF_KEY

pytestmark = pytest.mark.slow  # the real trained champion behind a real HTTP server

EXAMPLES = {"simulate": simulate.EXAMPLES, "export-training": export_training.EXAMPLES,
            "outcomes": outcomes.EXAMPLES}


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    """`nba`'s parser, with defaults from the environment as `main()` reads it."""
    return build_parser(CliSettings())


@pytest.fixture
def nba(parser, state):
    """Run a loop subcommand against the test's state store; returns its exit status."""

    def run(*argv: str) -> int:
        args = list(argv)
        if args[0] in ("export-training", "outcomes"):
            args += ["--state-url", state.url]
        return cli.run(parser.parse_args(args))

    return run


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app fixture behind a real HTTP server on a free loopback port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def customers(trained) -> pd.DataFrame:
    return io.read_customers(trained.data_dir / io.CUSTOMERS)


def decide(client, customer_id: str) -> dict:
    response = client.post("/v1/decisions", json={"customer_id": customer_id, "channel": "web"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize(("argv", "name"), [(["simulate"], "simulate"),
                                            (["export-training"], "export-training"),
                                            (["outcomes"], "outcomes"),
                                            (["outcomes", "load"], "outcomes")])
def test_every_loop_subcommand_has_help_with_examples(parser, capsys, argv, name):
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert EXAMPLES[name] in shown and f"nba {name}" in shown


def test_simulate_answers_decisions_over_http_and_fills_the_log(nba, server, trained, state,
                                                                 capsys):
    status = nba("simulate", "--url", server, "--customers", "50", "--seed", "4",
                 "--api-key", STAFF_KEY, "--data-dir", str(trained.data_dir))
    assert status == 0
    captured = capsys.readouterr()
    assert "decisions 50 in" in captured.out
    for line in ("holdouts", "explored", "conversions", "revenue"):
        assert line in captured.out
    assert captured.err.count("decisions (") == 10  # progress every 10%
    decisions = state.log.decisions_frame()
    outcomes = state.log.outcomes_frame()
    assert len(decisions) == 50
    served = decisions[[len(ids) > 0 for ids in decisions["offer_ids"]]]
    shown = outcomes[outcomes["event"] == "shown"]
    assert set(shown["decision_id"]) == set(served["decision_id"])  # every served offer seen
    conversions = int(captured.out.split("conversions")[1].split()[0].replace(",", ""))
    assert conversions == (outcomes["event"] == "purchased").sum()


def test_simulate_is_reproducible_in_what_it_asks(nba, server, trained, state):
    argv = ("simulate", "--url", server, "--customers", "20", "--seed", "9", "--api-key",
            STAFF_KEY, "--data-dir", str(trained.data_dir))
    nba(*argv)
    nba(*argv)
    asked = state.log.decisions_frame()["customer_id"].tolist()
    assert sorted(asked[:20]) == sorted(asked[20:])


@pytest.mark.parametrize(("extra", "message"), [
    (["--url", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
    (["--customers", "0"], "--customers must be at least 1"),
])
def test_simulate_errors_are_one_line(nba, trained, extra, message):
    with pytest.raises(CliError, match=message):
        nba("simulate", "--data-dir", str(trained.data_dir), *extra)


def test_simulate_needs_the_true_uplift(nba, tmp_path):
    with pytest.raises(CliError, match="true_uplift.parquet not found"):
        nba("simulate", "--data-dir", str(tmp_path))


def test_simulate_reports_a_refused_decision(nba, server, trained):
    with pytest.raises(CliError, match="HTTP 401"):
        nba("simulate", "--url", server, "--customers", "1", "--api-key", "x" * 20,
            "--data-dir", str(trained.data_dir))


def test_export_training_writes_the_log_in_the_data_contract(nba, client, customers, trained,
                                                             state, tmp_path, capsys):
    withdrawn = customers.loc[~customers["contactable"], "customer_id"].iloc[0]
    contactable = customers.loc[customers["contactable"], "customer_id"]
    ids = [*contactable.head(11), withdrawn]  # the withdrawn customer is a control row
    bodies = [decide(client, customer_id) for customer_id in ids]
    served = next(b for b in bodies if b["offers"])
    client.post("/v1/outcomes", json={"decision_id": served["decision_id"], "event": "purchased",
                                      "offer_id": served["offers"][0]["offer_id"],
                                      "revenue": 42.5})
    out = tmp_path / "export" / "log.parquet"
    assert nba("export-training", "--out", str(out), "--data-dir", str(trained.data_dir)) == 0
    catalog = io.read_catalog(trained.data_dir / io.OFFERS)
    frame = io.read_exposures(out, catalog)
    treated = sum(bool(b["offers"]) for b in bodies)
    assert len(frame) == 12 and (frame["treatment"] != "control").sum() == treated
    assert frame.loc[frame["customer_id"] == served["customer_id"], "revenue"].item() == 42.5
    assert frame.loc[frame["customer_id"] == withdrawn, "treatment"].item() == "control"
    shown = capsys.readouterr().out
    assert f"wrote 12 rows to {out} ({treated} treated, {12 - treated} control" in shown


def test_export_training_since_filters_and_refuses_nothing(nba, client, customers, trained,
                                                           tmp_path):
    decide(client, customers["customer_id"].iloc[0])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(CliError, match="no decisions logged .* since"):
        nba("export-training", "--out", str(tmp_path / "x.parquet"), "--since", later,
            "--data-dir", str(trained.data_dir))
    with pytest.raises(CliError, match="not an ISO 8601 date or timestamp"):
        nba("export-training", "--out", str(tmp_path / "x.parquet"), "--since", "yesterday",
            "--data-dir", str(trained.data_dir))
    assert not (tmp_path / "x.parquet").exists()


def test_export_training_never_writes_a_file_that_breaks_the_contract(nba, state, trained,
                                                                      tmp_path):
    """Only treated rows (no control arm) fail read_exposures: the old file stays."""
    state.log.record(DecisionRecord(decision_id="d1", decided_at=datetime.now(UTC),
                                    customer_id="C0000001", channel="web", model_version="1",
                                    offer_ids=("sitewide_10_off",), propensity=0.9,
                                    features={"recency_days": 3}))
    out = tmp_path / "exports" / "log.parquet"
    out.parent.mkdir()
    out.write_bytes(b"the previous export")
    with pytest.raises(CliError, match="breaks the data contract.*no control rows"):
        nba("export-training", "--out", str(out), "--data-dir", str(trained.data_dir))
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in out.parent.iterdir()] == ["log.parquet"]  # no staging leftovers


@pytest.fixture
def two_decisions(client, customers) -> tuple[dict, dict]:
    """A decision that served an offer and one for a customer who withdrew consent."""
    served = next(b for b in (decide(client, c) for c in customers["customer_id"].head(20))
                  if b["offers"])
    withdrawn = customers.loc[~customers["contactable"], "customer_id"].iloc[0]
    return served, decide(client, withdrawn)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_outcomes_load_records_each_row_once(nba, two_decisions, state, tmp_path, capsys,
                                             suffix):
    served, nothing = two_decisions
    offer = served["offers"][0]["offer_id"]
    frame = pd.DataFrame({
        "decision_id": [served["decision_id"]] * 3 + [nothing["decision_id"]],
        "offer_id": [offer, offer, offer, None],
        "event": ["shown", "accepted", "purchased", "purchased"],
        "revenue": [0.0, 0.0, 80.0, 12.0]})
    path = tmp_path / f"outcomes{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        io.write_parquet(frame, path)
    assert nba("outcomes", "load", str(path)) == 0
    assert "4 rows from" in capsys.readouterr().out
    assert nba("outcomes", "load", str(path)) == 0
    assert "0 recorded, 4 duplicates" in capsys.readouterr().out
    logged = state.log.outcomes_frame().sort_values(["decision_id", "event"])
    assert len(logged) == 4
    organic = logged[logged["decision_id"] == nothing["decision_id"]]
    assert organic["offer_id"].isna().all() and organic["revenue"].tolist() == [12.0]


@pytest.mark.parametrize(("row", "message"), [
    ({"event": "clicked"}, "row 2, column 'event'"),
    ({"revenue": -5.0}, "row 2, column 'revenue'"),
    ({"decision_id": "no-such-decision"}, "row 2, column 'decision_id': unknown decision_id"),
    ({"offer_id": "home_candle_set_x"}, "row 2, column 'offer_id': offer 'home_candle_set_x' "
                                        "was not shown"),
    ({"offer_id": None, "event": "shown"}, "row 2, column 'offer_id': event 'shown' needs"),
])
def test_a_bad_row_names_file_row_and_column_and_records_nothing(nba, two_decisions, state,
                                                                 tmp_path, row, message):
    served, _ = two_decisions
    good = {"decision_id": served["decision_id"], "offer_id": served["offers"][0]["offer_id"],
            "event": "shown", "revenue": 0.0}
    path = tmp_path / "outcomes.csv"
    pd.DataFrame([good, good | {"event": "accepted"} | row]).to_csv(path, index=False)
    with pytest.raises(CliError, match=f"outcomes.csv: {message}"):
        nba("outcomes", "load", str(path))
    assert state.log.outcomes_frame().empty


@pytest.mark.parametrize(("name", "content", "message"), [
    ("outcomes.csv", "decision_id,event,revenue\nd1,shown,0\n", "missing required column "
                                                                  "'offer_id'"),
    ("outcomes.json", "{}", "expected a .parquet or .csv file"),
    ("outcomes.parquet", "not parquet", "cannot be read"),
])
def test_unreadable_outcome_files_are_one_line(nba, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CliError, match=message):
        nba("outcomes", "load", str(path))


def test_the_simulator_waits_out_a_rate_limit(trained, monkeypatch) -> None:
    """A 429 is retried after the wait the service names; nothing is counted twice."""
    import nba.simulate as simulator

    truth = pd.read_parquet(trained.data_dir / "true_uplift.parquet").head(5)
    customers = pd.DataFrame({"customer_id": truth["customer_id"], "monetary": 50.0})
    waits: list[float] = []
    monkeypatch.setattr(simulator.time, "sleep", waits.append)
    answers = iter([(429, {"error": {"code": "rate_limited", "message": "slow down",
                                     "details": {"retry_after_seconds": 2}}}),
                    (200, {"decision_id": "d1", "customer_id": truth["customer_id"].iloc[0],
                           "holdout": True, "explored": False, "offers": []})])
    summary = simulator.Simulator(customers, truth, seed=1).run(
        lambda path, body: next(answers) if path == "/v1/decisions" else (200, {}),
        [truth["customer_id"].iloc[0]])
    assert waits == [2.0] and summary.throttled == 1 and summary.decisions == 1
