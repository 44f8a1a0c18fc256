"""Contact caps hold across workers and hosts: the count and the write are one atomic step."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

from state import open_store
from state.log import CapWrite, DecisionRecord

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_concurrent_capped_writes_for_one_customer_never_pass_the_cap(store_url: str):
    """Eight connections (as eight workers or hosts) each log 3-offer decisions for one
    customer at once, under a cap of 5: the cap is checked where the contacts are written."""
    cap, writers, rounds = 5, 8, 3
    barrier = Barrier(writers)

    def write(worker: int) -> None:
        with open_store(store_url) as own:
            for n in range(rounds):
                def build(counted: int, n: int = n) -> DecisionRecord:
                    offers = ("x", "y", "z")[:max(0, cap - counted)]
                    return DecisionRecord(decision_id=f"d-{worker}-{n}", decided_at=NOW,
                                          customer_id="one", channel="web", model_version="1",
                                          offer_ids=offers)
                if n == 0:
                    barrier.wait(timeout=30)  # everyone starts together
                own.log.record_capped([CapWrite("one", "web", NOW - timedelta(hours=1),
                                                build)])

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    with open_store(store_url) as check:
        made = check.contacts_since(customer_id="one", channel="web",
                                    since=NOW - timedelta(hours=1))
        logged = check.log.decisions_frame()
    assert made == cap  # reached exactly, never passed
    assert len(logged) == writers * rounds
    assert sum(len(offers) for offers in logged["offer_ids"]) == cap
