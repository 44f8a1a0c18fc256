"""The decision log at scale on the real PostgreSQL: monthly partitions, routing, pruning by
dropping partitions, migrating a store made before partitioning, campaign logs by COPY."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import create_engine, text

from state import StateStore, open_store
from state.log import CapWrite, DecisionRecord, Outcome
from state.retention import Pruned, prune
from state.schema import metadata

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])  # SQLite stays unpartitioned

JAN, FEB, MAR = (datetime(2031, m, 10, 12, tzinfo=UTC) for m in (1, 2, 3))


def decision(decision_id: str, when: datetime, customer: str = "c1") -> DecisionRecord:
    return DecisionRecord(decision_id, when, customer, "web", "1", ("a", "b"))


def where(store: StateStore, table: str, key: str) -> dict[str, str]:
    """Each row's partition, by key."""
    with store.db.engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT {key}::text, tableoid::regclass::text "
                                      f"FROM {table}")).all())


def partitions_of(store: StateStore, table: str) -> set[str]:
    with store.db.engine.connect() as conn:
        return set(conn.execute(text(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = to_regclass(:t)"), {"t": table}).scalars())


def test_rows_go_to_their_month_and_missing_months_are_made_on_demand(store: StateStore):
    assert store.db.partitions.tables == {"decisions", "contacts"}
    ahead = partitions_of(store, "decisions")
    assert len(ahead) == 3 and "decisions_p2031_01" not in ahead  # this month + 2, made at open
    store.log.record(decision("jan", JAN), count_contacts=True)
    store.log.record_many([decision("feb", FEB), decision("mar", MAR)], count_contacts=True)
    # the hot path's capped write builds its row inside the transaction: a new month there
    late = datetime(2031, 5, 1, tzinfo=UTC)
    store.log.record_capped([CapWrite("c2", "web", late - timedelta(hours=1),
                                      lambda counted: decision("may", late, "c2"))])
    assert where(store, "decisions", "decision_id") == {
        "jan": "decisions_p2031_01", "feb": "decisions_p2031_02", "mar": "decisions_p2031_03",
        "may": "decisions_p2031_05"}
    assert set(where(store, "contacts", "id").values()) == {
        "contacts_p2031_01", "contacts_p2031_02", "contacts_p2031_03", "contacts_p2031_05"}
    # another process (here: another store) knows nothing of them and writes there anyway
    with open_store(store.db.engine.url.render_as_string(hide_password=False)) as other:
        other.log.record(decision("jan-2", JAN), count_contacts=True)
    assert store.contacts_since(customer_id="c1", channel="web",
                                since=JAN - timedelta(days=1)) == 8


def test_pruning_drops_whole_old_months_and_deletes_the_rest_row_by_row(store: StateStore):
    for n, when in enumerate((JAN, JAN, FEB, FEB + timedelta(days=10), MAR)):
        store.log.record(decision(f"d{n}", when), count_contacts=True)
        store.log.record_outcome(Outcome(f"d{n}", "a", "accepted", 1.0, when))
    cut = FEB + timedelta(days=5)  # inside February: January goes whole, part of February
    expected = Pruned(decisions=3, outcomes=3, contacts=6)
    counted = prune(store, before=cut, dry_run=True)
    assert counted == expected
    # January, and the empty months made ahead at open (today, long before 2031); not February
    assert {"decisions_p2031_01", "contacts_p2031_01"} <= set(counted.partitions)
    assert not {p for p in counted.partitions if p.endswith(("2031_02", "2031_03"))}
    pruned = prune(store, before=cut, batch=1)
    assert pruned == expected and pruned.partitions == counted.partitions
    assert not {"decisions_p2031_01", "contacts_p2031_01"} & (
        partitions_of(store, "decisions") | partitions_of(store, "contacts"))
    assert {"decisions_p2031_02", "decisions_p2031_03"} <= partitions_of(store, "decisions")
    assert store.log.decisions_frame()["decision_id"].tolist() == ["d3", "d4"]
    assert sorted(store.log.outcomes_frame()["decision_id"]) == ["d3", "d4"]
    assert prune(store, before=cut) == Pruned()
    # a dropped month is made again if something is written there
    store.log.record(decision("back", JAN), count_contacts=True)
    assert where(store, "decisions", "decision_id")["back"] == "decisions_p2031_01"


def test_a_campaign_logged_twice_at_once_logs_each_decision_once(store_url: str):
    """COPY has no ON CONFLICT and a partitioned key holds the time: two runs of one campaign
    at different times, logging at once, still log each customer once (the campaign lock)."""
    barrier = Barrier(2)

    def run(when: datetime) -> int:
        with open_store(store_url) as own:
            records = [DecisionRecord(f"campaign:spring:c{i}", when, f"c{i}", "email", "1",
                                      ("a",)) for i in range(300)]
            barrier.wait(timeout=30)
            return own.log_campaign(records, count_contacts=True)

    with ThreadPoolExecutor(2) as pool:
        logged = list(pool.map(run, (JAN, MAR)))
    assert sorted(logged) == [0, 300]
    with open_store(store_url) as check:
        assert len(check.log.decisions_frame()) == 300
        assert sum(check.contacts_since(customer_id=f"c{i}", channel="email",
                                        since=JAN - timedelta(days=1)) for i in range(300)) == 300


def test_capped_writes_creating_a_month_at_once_still_never_pass_the_cap(store_url: str):
    cap, writers = 2, 6
    barrier = Barrier(writers)

    def write(worker: int) -> None:
        with open_store(store_url) as own:
            def build(counted: int) -> DecisionRecord:
                return DecisionRecord(f"d{worker}", MAR, "one", "web", "1",
                                      ("x", "y")[:max(0, cap - counted)])
            barrier.wait(timeout=30)
            own.log.record_capped([CapWrite("one", "web", MAR - timedelta(hours=1), build)])

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    with open_store(store_url) as check:
        assert check.contacts_since(customer_id="one", channel="web",
                                    since=MAR - timedelta(hours=1)) == cap
        assert len(check.log.decisions_frame()) == writers


def test_a_store_made_before_partitioning_is_migrated_on_request(
        store_url: str, caplog: pytest.LogCaptureFixture):
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata.create_all(engine)  # the plain shape every store had before
    engine.dispose()
    with caplog.at_level(logging.WARNING), open_store(store_url) as store:
        assert "nba state partition" in caplog.text
        assert store.db.partitions.tables == frozenset()
        store.log.record(decision("old", JAN - timedelta(days=40)), count_contacts=True)
        store.log.record_outcome(Outcome("old", "a", "accepted", 1.0, JAN))
        store.log.record(decision("jan", JAN), count_contacts=True)  # plain tables still work

        done = store.db.partition()
        assert len(done) == 3 and store.db.partition() == []  # FK, two tables; idempotent
        assert store.db.partitions.tables == {"decisions", "contacts"}
        assert where(store, "decisions", "decision_id") == {"old": "decisions_legacy",
                                                            "jan": "decisions_legacy"}
        store.log.record(decision("mar", MAR), count_contacts=True)
        assert where(store, "decisions", "decision_id")["mar"] == "decisions_p2031_03"
        assert len(set(where(store, "contacts", "id"))) == 6  # ids go on after the old ones
        # the old table is one partition, up to the month after its newest row: pruning
        # deletes its old rows, then drops it whole once the cut-off passes its end
        assert prune(store, before=JAN - timedelta(days=1)).partitions == ()
        assert prune(store, before=FEB + timedelta(days=1)).partitions == (
            "decisions_legacy", "contacts_legacy")
        assert store.log.decisions_frame()["decision_id"].tolist() == ["mar"]


def test_the_cli_prunes_before_a_date_naming_the_dropped_partitions(
        store: StateStore, store_url: str, tmp_path, capsys: pytest.CaptureFixture[str]):
    from nba.cli import main

    store.log.record(decision("jan", JAN), count_contacts=True)
    store.log.record(decision("mar", MAR), count_contacts=True)
    flags = ["--state-url", store_url, "--data-dir", str(tmp_path)]  # no catalog: no caps
    assert main(["state", "prune", "--before", "2031-02-01", *flags]) == 0
    out = capsys.readouterr().out
    assert "decisions_p2031_01" in out and "contacts_p2031_01" in out
    assert "decisions              1" in out
    assert store.log.decisions_frame()["decision_id"].tolist() == ["mar"]
    assert main(["state", "partition", *flags]) == 0
    assert "already partitioned" in capsys.readouterr().out
