"""The per-decision read and log write on held connections (state.hotpath), on both backends."""

from __future__ import annotations

import multiprocessing
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from state import StateStore, StateStoreError
from state.log import DecisionRecord
from state.schema import contacts, decisions

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def record(decision_id: str, customer: str = "c1", offers: tuple[str, ...] = ("a", "b")
           ) -> DecisionRecord:
    return DecisionRecord(decision_id, T0, customer, "web", "1", offers)


def counts(store: StateStore) -> tuple[int, int]:
    """(decisions, contacts) rows, read through SQLAlchemy Core rather than the hot path."""
    with store.db.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(decisions)).scalar_one(),
                conn.execute(select(func.count()).select_from(contacts)).scalar_one())


def state_of(store: StateStore, customer: str = "c1"):
    return store.decision_state(launch_ids=[], customer_id=customer, channel="web",
                                contacts_since=T0 - timedelta(hours=1), declines_since=None,
                                now=T0)


def test_a_failed_log_write_leaves_nothing_and_the_next_one_works(store: StateStore) -> None:
    store.log.record(record("d1"), count_contacts=True)
    with pytest.raises(StateStoreError, match="record decisions failed"):
        # the second decision repeats d1's id: the batch (and its contacts) must not land
        store.log.record_many([record("d2"), record("d1")], count_contacts=True)
    assert counts(store) == (1, 2)
    store.log.record(record("d3"), count_contacts=True)
    assert counts(store) == (2, 4)
    assert state_of(store).contacts == 4


def test_timestamps_written_by_the_hot_path_read_back_as_core_writes_them(
        store: StateStore) -> None:
    store.log.record(record("d1"))
    assert store.log.get("d1").decided_at == T0
    store.record_contacts(customer_id="c1", channel="web", offer_ids=["x"], now=T0)
    store.log.record(record("d2", offers=("y",)), count_contacts=True)
    assert state_of(store).contacts == 2  # Core's and the hot path's rows compare alike


def test_threads_each_use_their_own_connection(store: StateStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                store.log.record(record(f"w{worker}-{i}", customer=f"c{worker}"),
                                 count_contacts=True)
                assert state_of(store, f"c{worker}").contacts == 2 * (i + 1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert counts(store) == (100, 200)


def _forked_decision(store: StateStore) -> None:
    store.after_fork()
    store.log.record(record("child"), count_contacts=True)
    os._exit(0 if state_of(store).contacts == 4 else 1)


def test_a_forked_worker_reads_and_logs_on_its_own_connection(store: StateStore) -> None:
    store.log.record(record("parent"), count_contacts=True)  # the parent now holds one
    child = multiprocessing.get_context("fork").Process(target=_forked_decision, args=(store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    store.log.record(record("parent-again"), count_contacts=True)  # still works after
    assert state_of(store).contacts == 6


def terminate_hot_connection(store: StateStore, admin: Engine) -> None:
    """End the store's held session server-side, as a server restart would, and wait for it."""
    pid = store.db.hot.connection_for_thread().info.backend_pid
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"),
                            {"pid": pid}).scalar_one()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_dropped_postgres_connection_is_replaced(store: StateStore,
                                                   postgres_admin: Engine) -> None:
    store.log.record(record("d1"), count_contacts=True)
    terminate_hot_connection(store, postgres_admin)
    assert state_of(store).contacts == 2  # a read retries on a new connection
    terminate_hot_connection(store, postgres_admin)
    store.log.record(record("d2"), count_contacts=True)  # a write that failed at BEGIN too
    assert counts(store) == (2, 4)
