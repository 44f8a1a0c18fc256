"""The `nba` command line against the real registry.

The console script runs in processes of its own where the process is the subject (help,
demo-data, train, exit statuses); commands whose subject is their answer run in this process
(`nba_main`, tests/integration/conftest.py), sparing each a fresh interpreter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow  # runs the nba console script against the real trained registry

NBA = str(Path(sys.executable).parent / "nba")
SUBCOMMANDS = ["demo-data", "train", "promote", "compare", "model", "serve", "decide",
               "batch-score", "inventory", "state", "report", "simulate", "export-training",
               "outcomes"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([NBA, *args], capture_output=True, text=True, timeout=300,
                          env=os.environ | (env or {}), cwd=cwd)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_with_examples(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and f"nba {command}" in result.stdout


def test_demo_data_writes_the_contract(tmp_path):
    result = run("demo-data", "--customers", "500", "--seed", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("exposures.parquet", "customers.parquet", "inventory.parquet", "offers.yaml",
                 "true_uplift.parquet"):
        assert (tmp_path / name).exists()
    assert "2,000 exposures" in result.stdout


def test_model_decide_and_promote_against_the_registry(trained, tmp_path, nba_main):
    env = {"MLFLOW_TRACKING_URI": trained.tracking_uri, "NBA_DATA_DIR": str(trained.data_dir),
           "NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    shown = nba_main("model", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"] == trained.version

    decided = nba_main("decide", "C0000002", "--channel", "app", env=env)
    assert decided.returncode == 0, decided.stderr
    assert json.loads(decided.stdout)["customer_id"] == "C0000002"

    promoted = nba_main("promote", "--version", trained.version, "--alias", "challenger", env=env)
    assert promoted.returncode == 0 and "challenger" in promoted.stdout
    assert nba_main("model", "--alias", "challenger", env=env).returncode == 0


def test_state_prune_counts_then_deletes_old_history(trained, tmp_path, nba_main):
    from datetime import UTC, datetime, timedelta

    from state import open_store
    from state.log import DecisionRecord

    url = f"sqlite:///{tmp_path / 'state.db'}"
    now = datetime.now(UTC)
    with open_store(url) as store:
        for decision_id, age in (("old", 500), ("new", 1)):
            store.log.record(DecisionRecord(decision_id, now - timedelta(days=age), "c1", "web",
                                            "1", ("a",)), count_contacts=True)
    env = {"NBA_STATE_URL": url, "NBA_DATA_DIR": str(trained.data_dir)}
    dry = nba_main("state", "prune", "--older-than", "400", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and "decisions              1" in dry.stdout
    done = nba_main("state", "prune", "--older-than", "400", env=env)
    assert done.returncode == 0 and "deleted history" in done.stdout
    with open_store(url) as store:
        assert store.log.decisions_frame()["decision_id"].tolist() == ["new"]
    refused = nba_main("state", "prune", "--older-than", "2", env=env)  # the demo caps look back 30
    assert refused.returncode == 2 and "contact caps" in refused.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["promote", "--version", "999"], "has no version 999"),
    (["decide", "nobody"], "unknown customer_id 'nobody'"),
    (["decide", "C0000001", "--channel", "fax"], "unknown channel"),
    (["report", "funnel", "--since", "9999-12-31T23:00:00-05:00"], "out of range"),
    (["export-training", "--out", "x.parquet", "--since", "0001-01-01T00:00:00+05:00"],
     "out of range"),
    (["state", "prune", "--before", "9999-12-31T23:00:00-05:00"], "out of range"),
    (["state", "prune", "--older-than", "1e9"], "before the year 1"),
    (["decide", "C0000001", "--at", "0001-01-01"], "outside years 1970 to 9000"),
    (["batch-score", "--customers", "c.parquet", "--out", "."], "is a directory"),
    (["export-training", "--out", "."], "is a directory"),
])
def test_cli_errors_are_one_clear_line(trained, args, message, tmp_path, nba_main, caplog):
    """In process (the console script's own exit status: test_missing_alias_exits_3). Log
    records go to caplog here, not stderr, so a logged traceback shows as an ERROR record."""
    env = {"MLFLOW_TRACKING_URI": trained.tracking_uri, "NBA_DATA_DIR": str(trained.data_dir),
           "NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    result = nba_main(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_missing_alias_exits_3(tmp_path):
    result = run("model", env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 3 and "no version" in result.stderr


def test_train_prints_the_menu_and_the_chosen_policy_dr_value(tmp_path):
    data = tmp_path / "data"
    assert run("demo-data", "--customers", "1500", "--exposures", "6000", "--out",
               str(data)).returncode == 0
    result = run("train", "--data-dir", str(data), "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}", "--artifact-root", str(tmp_path / "mlruns"),
                 "--learner", "s", "--capacity", "low", "--rule", "best_single,full",
                 "--trees", "20", cwd=tmp_path, env={"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR":
                                                     "false"})
    assert result.returncode == 0, result.stderr
    assert "menu: cross-fitted DR incremental profit" in result.stdout
    assert "s/low/best_single" in result.stdout and "s/low/full" in result.stdout
    assert "DR incremental profit per row" in result.stdout and "<-" in result.stdout
    # whether these data can tell targeting from the best single offer, and at what size
    assert "top targeting candidate vs the best single offer" in result.stdout
    # each offer's DR net value after the menu, and how finely the data tell them apart
    offers = result.stdout[result.stdout.index("offers: DR net value per row"):]
    assert result.stdout.index("<-") < result.stdout.index("offers: DR net value per row")
    assert "net_low" in offers and "offers' 95% intervals overlap the best one's" in offers
    found = re.search(r"\(run (\w+)\)", result.stdout)
    assert found is not None
    run_id = found.group(1)
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert "evaluation/offers.csv" in logged
    assert "offers_indistinguishable_from_best" in client.get_run(run_id).data.metrics
    bad = run("train", "--data-dir", str(data), "--rule", "bold", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown rule 'bold'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_train_names_the_bad_file_and_column(tmp_path, demo_dir):
    import pandas as pd

    for name in ("offers.yaml", "customers.parquet"):
        (tmp_path / name).write_bytes((demo_dir / name).read_bytes())
    frame = pd.read_parquet(demo_dir / "exposures.parquet").head(100)
    frame["revenue"] = -1.0
    frame.to_parquet(tmp_path / "exposures.parquet")
    result = run("train", "--data-dir", str(tmp_path), "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "exposures.parquet: column 'revenue': negative revenue" in result.stderr
    assert not (tmp_path / "m.db").exists() or "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_state_store_error_is_one_line_not_a_traceback(tmp_path, demo_dir, store_url):
    import pandas as pd

    customers = pd.read_parquet(demo_dir / "customers.parquet").head(5)
    customers.loc[0, "customer_id"] = "C\x00X"  # PostgreSQL refuses NUL in text
    customers.to_parquet(tmp_path / "customers.parquet")
    url = make_url(store_url)
    if url.password is None:  # the test server trusts local connections: any password does
        url = url.set(password="pw-must-not-show-7f3a")
    result = run("customers", "load", str(tmp_path / "customers.parquet"),
                 "--state-url", url.render_as_string(hide_password=False))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "nba customers: error: state store" in result.stderr and "NUL" in result.stderr
    assert "Traceback" not in result.stderr
    assert str(url.password) not in result.stderr + result.stdout


def test_train_refuses_arms_too_small_to_cross_fit(tmp_path, demo_dir):
    import pandas as pd

    for name in ("offers.yaml", "customers.parquet"):
        (tmp_path / name).write_bytes((demo_dir / name).read_bytes())
    pd.read_parquet(demo_dir / "exposures.parquet").head(30).to_parquet(
        tmp_path / "exposures.parquet")
    result = run("train", "--data-dir", str(tmp_path), "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "exposures.parquet: column 'treatment': arm(s) with too few rows" in result.stderr
    assert "Traceback" not in result.stderr and "cross-fitting" not in result.stderr


def test_train_checks_customers_parquet_before_fitting(tmp_path, demo_dir):
    import pandas as pd

    for name in ("offers.yaml", "exposures.parquet"):
        (tmp_path / name).write_bytes((demo_dir / name).read_bytes())
    customers = pd.read_parquet(demo_dir / "customers.parquet")
    customers.drop(columns=["recency_days"]).to_parquet(tmp_path / "customers.parquet")
    result = run("train", "--data-dir", str(tmp_path), "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "customers.parquet" in result.stderr and "recency_days" in result.stderr
    assert "cross-fitting" not in result.stderr + result.stdout  # refused before any fit
    assert "Traceback" not in result.stderr


def test_inventory_load_show_and_preview_decisions_read_the_state_store(trained, tmp_path,
                                                                       nba_main):
    env = {"MLFLOW_TRACKING_URI": trained.tracking_uri, "NBA_DATA_DIR": str(trained.data_dir),
           "NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    inventory = str(trained.data_dir / "inventory.parquet")
    loaded = nba_main("inventory", "load", inventory, env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "stock rows" in loaded.stdout and "version 1" in loaded.stdout
    again = nba_main("inventory", "load", inventory, "--if-empty", env=env)
    assert again.returncode == 0 and "already holds stock" in again.stdout
    shown = nba_main("inventory", "show", env=env)
    assert shown.returncode == 0 and "SNK-COLLAB-01" in shown.stdout
    preview = nba_main("decide", "C0000002", "--limit", "20", env=env)
    assert preview.returncode == 0, preview.stderr
    body = json.loads(preview.stdout)
    assert all(o["reservation"] is None for o in body["offers"])  # a preview holds nothing
    assert "launch" not in nba_main("inventory", "show", env=env).stdout


@pytest.mark.parametrize(("args", "message"), [
    (["inventory", "load"], "needs a FILE"),
    (["inventory", "load", "missing.parquet"], "missing.parquet"),
    (["inventory", "show", "--state-url", "mysql://x/y"], "mysql://x/y"),
    (["inventory", "show", "--state-url", "postgresql://nobody@127.0.0.1:1/none"],
     "postgresql://nobody@127.0.0.1:1/none"),
])
def test_inventory_errors_name_the_file_or_store(tmp_path, args, message):
    result = run(*args, env={"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"},
                 cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_inventory_load_names_the_bad_column(tmp_path, demo_dir):
    import pandas as pd

    frame = pd.read_parquet(demo_dir / "inventory.parquet")
    frame.loc[0, "on_hand"] = -3
    frame.to_parquet(tmp_path / "bad.parquet")
    result = run("inventory", "load", str(tmp_path / "bad.parquet"),
                 env={"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"})
    assert result.returncode == 2
    assert "bad.parquet" in result.stderr and "on_hand" in result.stderr
