"""Campaign scoring on real Spark (local[2]) writes exactly the local engine's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from decisioning.decision import DecisionContext
from decisioning.snapshot import StateSnapshot
from features import io
from features.errors import ContractError
from nba.cli import main
from state import open_store
from state.rows import snapshot_of, stock_rows
from training.batch import batch_score
from training.package import DECISION_COLUMNS
from training.spark_score import OUTPUT_SCHEMA, policy_archive, policy_from_archive, spark_score

pytestmark = pytest.mark.slow  # starts a JVM and Spark's Python workers

KEY = ["customer_id", "rank"]


def sorted_rows(path: Path) -> pd.DataFrame:
    """An output (file or Spark's folder of part files) in a canonical order."""
    return pd.read_parquet(path).sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def customers_file(tmp_path_factory: pytest.TempPathFactory, trained) -> Path:
    """The demo customers in four row groups, so Spark cuts several partitions and batches."""
    frame = io.read_customers(trained.data_dir / io.CUSTOMERS)
    path = tmp_path_factory.mktemp("spark-in") / "customers.parquet"
    frame.to_parquet(path, row_group_size=-(-len(frame) // 4))
    return path


@pytest.mark.parametrize("limit", [1, 3])
def test_spark_output_equals_the_local_engines(tmp_path, trained, loaded, spark, customers_file,
                                                limit) -> None:
    context = DecisionContext("email", datetime.now(UTC), limit=limit)
    snapshot = StateSnapshot(snapshot_of(io.read_inventory(trained.data_dir / io.INVENTORY)))
    local = batch_score(loaded.policy, customers_file, tmp_path / "local.parquet", context,
                        snapshot, chunk_size=700)
    seen: list[tuple[int, int]] = []
    result = spark_score(spark, loaded.policy, str(customers_file), str(tmp_path / "spark"),
                         context, snapshot, progress=lambda done, tasks: seen.append((done, tasks)),
                         progress_seconds=0.2, partitions=3)
    ours, theirs = sorted_rows(tmp_path / "local.parquet"), sorted_rows(tmp_path / "spark")
    pd.testing.assert_frame_equal(theirs, ours, check_exact=True)
    assert (result.customers, result.rows) == (local.customers, local.rows)
    assert ours["offer_id"].isna().any() or limit == 3  # nothing-to-send rows: null, not "nan"
    assert not ours["offer_id"].eq("nan").any()
    assert len(list((tmp_path / "spark").glob("part-*.parquet"))) == 3  # one per task
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.parquet", "spark"]  # no temp


def test_spark_output_schema_is_the_local_engines_columns() -> None:
    assert OUTPUT_SCHEMA.names == DECISION_COLUMNS


def test_policy_ships_as_bytes_and_decides_the_same(loaded) -> None:
    again = policy_from_archive(policy_archive(loaded.policy))
    X = loaded.customers.matrix[:200]
    for mine, theirs in zip(loaded.policy.score(X), again.score(X), strict=True):
        assert (mine == theirs).all()


def test_bad_input_names_file_and_column_and_writes_nothing(tmp_path, loaded, spark,
                                                            customers_file) -> None:
    frame = pd.read_parquet(customers_file)
    frame.loc[3, "customer_id"] = None
    bad = tmp_path / "nulls.parquet"
    frame.to_parquet(bad)
    context = DecisionContext("email", datetime.now(UTC))
    with pytest.raises(ContractError, match="nulls.parquet.*customer_id"):
        spark_score(spark, loaded.policy, str(bad), str(tmp_path / "out"), context)
    missing = tmp_path / "missing.parquet"
    feature = loaded.policy.spec.features[0].name
    pq.write_table(pq.read_table(customers_file).drop_columns([feature]), missing)
    with pytest.raises(ContractError, match=f"missing.parquet.*{feature}"):
        spark_score(spark, loaded.policy, str(missing), str(tmp_path / "out"), context)
    assert not (tmp_path / "out").exists()


def test_cli_engine_spark_resolves_the_champion_and_replaces_the_output(
        tmp_path, trained, spark, customers_file, capsys) -> None:
    out = tmp_path / "tonight"
    out.mkdir()
    (out / "stale.parquet").write_bytes(b"an older run")
    argv = ["batch-score", "--engine", "spark", "--spark-master", "local[2]",
            "--tracking-uri", trained.tracking_uri, "--data-dir", str(trained.data_dir),
            "--customers", str(customers_file), "--out", str(out), "--limit", "2",
            "--partitions", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # the alias was resolved once, on the driver, to the champion's version
    assert "on Spark" in printed and f"models:/{trained.model_name}/{trained.version}" in printed
    rows = sorted_rows(out)
    assert not (out / "stale.parquet").exists()
    assert set(rows["customer_id"]) == set(pd.read_parquet(customers_file)["customer_id"])
    assert rows["rank"].max() == 2
    assert spark.sparkContext._jsc is not None  # the shared session was not stopped


@pytest.mark.parametrize("backend", ["postgresql"])  # the COPY path
def test_spark_campaign_equals_the_local_engines_and_logs_each_decision_once(
        tmp_path, trained, spark, store_url, capsys) -> None:
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS).head(600)
    source = tmp_path / "customers.parquet"
    customers.to_parquet(source, row_group_size=200)
    ids = customers["customer_id"].tolist()
    now = datetime.now(UTC)
    with open_store(store_url) as store:  # stock, a launch partly held, some contacts
        store.replace_inventory(stock_rows(io.read_inventory(trained.data_dir / io.INVENTORY)),
                                now=now)
        for k in range(40):
            store.reserve(offer_id="puffer_jacket_drop", supply=300, customer_id=f"x{k}",
                          decision_id=f"d{k}", hold_seconds=3600, now=now)
        store.contacts.record(customer_id=ids[0], channel="email", now=now,
                              offer_ids=[f"o{k}" for k in range(9)])  # at the cap
        store.contacts.record(customer_id=ids[1], channel="email", now=now, offer_ids=["o"])
        for _ in range(2):
            store.contacts.record_decline(customer_id=ids[2], offer_id="sitewide_10_off",
                                          now=now)
    at = (now + timedelta(seconds=1)).isoformat()

    def run(engine: str, out: Path, *extra: str) -> str:
        argv = ["batch-score", "--engine", engine, "--customers", str(source), "--out",
                str(out), "--tracking-uri", trained.tracking_uri, "--data-dir",
                str(trained.data_dir), "--state-url", store_url, "--at", at, "--workers", "1",
                "--campaign", "winter-1", "--chunk-size", "150", "--spark-master", "local[2]",
                *extra]
        assert main(argv) == 0
        return capsys.readouterr().out

    def logged() -> tuple[pd.DataFrame, int]:
        with open_store(store_url) as store:
            since = now - timedelta(hours=1)
            return store.log.decisions_frame(), sum(
                store.contacts_since(customer_id=c, channel="email", since=since) for c in ids)

    run("local", tmp_path / "local.parquet", "--dry-run")
    assert "dry run: nothing logged" in run("spark", tmp_path / "dry", "--dry-run")
    nothing, seeded = logged()
    assert nothing.empty and seeded == 10  # the dry runs wrote nothing to the store
    local = sorted_rows(tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(sorted_rows(tmp_path / "dry"), local, check_exact=True)
    assert local.loc[local["customer_id"] == ids[0], "offer_id"].isna().all()  # capped
    assert "sitewide_10_off" not in set(local.loc[local["customer_id"] == ids[2], "offer_id"])

    assert "logged 600 new decisions" in run("spark", tmp_path / "spark")
    pd.testing.assert_frame_equal(sorted_rows(tmp_path / "spark"), local, check_exact=True)
    log, contacts = logged()
    assert len(log) == 600 and set(log["decision_id"]) == {f"campaign:winter-1:{c}" for c in ids}
    sent = local[local["offer_id"].notna()].sort_values(KEY).groupby("customer_id")["offer_id"]
    served = log.set_index("customer_id")["offer_ids"]
    assert {c: list(o) for c, o in sent} == {c: o for c, o in served.items() if o}
    assert contacts == 10 + int(local["offer_id"].notna().sum())

    assert "logged 0 new decisions, 600 already logged" in run("spark", tmp_path / "again")
    again, contacts_again = logged()
    assert len(again) == 600 and contacts_again == contacts
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "again", "customers.parquet", "dry", "local.parquet", "spark"]  # no temp folders
    # a budget is a greedy over the whole list: refused on Spark, saying why
    assert main(["batch-score", "--engine", "spark", "--customers", str(source), "--out",
                 str(tmp_path / "budget"), "--budget", "10"]) == 2
    assert "global greedy" in capsys.readouterr().err
