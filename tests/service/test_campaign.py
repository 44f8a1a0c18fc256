"""`nba batch-score --campaign`: a campaign's sends are logged decisions (in process, on the
small service policy): holdout rows, one log row per customer, idempotent re-runs, dry runs."""

from __future__ import annotations

import contextlib
import io as text_io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from decisioning.decision import DEFAULT_SALT
from decisioning.experiment import in_holdout
from features import io
from nba.cli import main as nba
from state import open_store
from state.rows import stock_rows


def run_nba(argv: list[str]) -> tuple[int, str, str]:
    """`nba ...` in this process: exit status, standard output and standard error."""
    out, err = text_io.StringIO(), text_io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = nba(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def campaign(trained, tmp_path):
    """Runs `nba batch-score --campaign` over 300 customers against a fresh state store."""
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS).head(300)
    source = tmp_path / "customers.parquet"
    customers.to_parquet(source)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        store.replace_inventory(stock_rows(io.read_inventory(trained.data_dir / io.INVENTORY)),
                                now=datetime.now(UTC))

    def run(*extra: str, out: Path = tmp_path / "out.parquet") -> tuple[int, str, str]:
        return run_nba(["batch-score", "--customers", str(source), "--out", str(out),
                        "--tracking-uri", trained.tracking_uri, "--data-dir",
                        str(trained.data_dir), "--state-url", url, "--workers", "1",
                        "--channel", "email", *extra])

    return run, url, customers, tmp_path


def test_a_campaign_logs_one_decision_per_customer_once(campaign, monkeypatch):
    monkeypatch.delenv("NBA_HOLDOUT_SHARE", raising=False)
    run, url, customers, tmp_path = campaign
    code, out, err = run("--campaign", "spring-1", "--dry-run")
    assert code == 0, err
    assert "dry run: nothing logged" in out
    with open_store(url) as store:
        assert store.log.decisions_frame().empty
    code, out, err = run("--campaign", "spring-1")
    assert code == 0, err
    assert "logged 300 new decisions" in out
    rows = pd.read_parquet(tmp_path / "out.parquet")
    with open_store(url) as store:
        log = store.log.decisions_frame().set_index("customer_id")
        since = datetime.now(UTC) - timedelta(hours=1)
        counted = {c: store.contacts_since(customer_id=c, channel="email", since=since)
                   for c in customers["customer_id"]}
    assert len(log) == 300 and set(log.index) == set(customers["customer_id"])
    assert (log["decision_id"] == "campaign:spring-1:" + log.index.to_series()).all()
    held = {c for c in customers["customer_id"] if in_holdout(c, 0.05, DEFAULT_SALT)}
    assert held and set(log.index[log["holdout"]]) == held
    holdout_rows = rows[rows["customer_id"].isin(held)]
    assert holdout_rows["holdout"].all() and holdout_rows["offer_id"].isna().all()
    sent = rows[rows["offer_id"].notna()].groupby("customer_id").size()
    assert {c: n for c, n in counted.items() if n} == sent.to_dict()  # the sends are contacts
    for customer_id, offers in log["offer_ids"].items():
        assert offers == rows[(rows["customer_id"] == customer_id)
                              & rows["offer_id"].notna()].sort_values("rank")[
                                  "offer_id"].tolist()

    code, out, err = run("--campaign", "spring-1", out=tmp_path / "again.parquet")
    assert code == 0, err
    assert "logged 0 new decisions, 300 already logged" in out
    with open_store(url) as store:
        assert len(store.log.decisions_frame()) == 300
        assert {c: store.contacts_since(customer_id=c, channel="email", since=since)
                for c in customers["customer_id"]} == counted


@pytest.mark.parametrize(("args", "message"), [
    (["--campaign", "no spaces"], "--campaign 'no spaces'"),
    (["--dry-run"], "--dry-run needs --campaign"),
    (["--campaign", "ok", "--at", "yesterday"], "--at: 'yesterday' is not an ISO 8601"),
])
def test_bad_campaign_flags_are_named(campaign, args, message):
    run, *_ = campaign
    code, _, err = run(*args)
    assert code == 2 and message in err


def test_a_budget_keeps_the_sends_worth_most_per_unit_of_spend(campaign, loaded):
    run, _, customers, tmp_path = campaign
    costs = {o.offer_id: o.cost for o in loaded.policy.catalog.offers}
    code, _, err = run("--limit", "2", "--campaign", "all", "--dry-run",
                       out=tmp_path / "all.parquet")
    assert code == 0, err
    everything = pd.read_parquet(tmp_path / "all.parquet")
    full = everything[everything["offer_id"].notna()]
    spend = (full["offer_id"].map(costs) + 0.2).sum()
    code, _, err = run("--limit", "2", "--budget", f"{spend / 3:.4f}", "--contact-cost", "0.2",
                       "--campaign", "budgeted", "--dry-run", out=tmp_path / "budget.parquet")
    assert code == 0, err
    rows = pd.read_parquet(tmp_path / "budget.parquet")
    sent = rows[rows["offer_id"].notna()]
    assert 0 < (sent["offer_id"].map(costs) + 0.2).sum() <= spend / 3 + 1e-6
    assert len(sent) < len(full)
    left_out = {(c, o) for c, s in zip(rows["customer_id"], rows["suppressed"], strict=True)
                for o, reason in json.loads(s).items() if reason == "budget"}
    assert len(left_out) == len(full) - len(sent)
    # what was kept is what was worth most per unit of spend
    ratio = full["expected_incremental_value"] / (full["offer_id"].map(costs) + 0.2)
    kept = full.set_index(["customer_id", "offer_id"]).index.isin(
        sent.set_index(["customer_id", "offer_id"]).index)
    assert ratio[kept].min() >= ratio[~kept].max() - 1e-9 or len(sent) == 0
    code, _, err = run("--max-contacts", "-1")
    assert code == 2 and "--max-contacts must be >= 0" in err
