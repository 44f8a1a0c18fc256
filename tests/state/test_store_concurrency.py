"""Several processes on one store, as gunicorn workers (or hosts) use it: no oversell, no errors.

Workers are spawned, not forked, and each opens its own store from the URL, exactly as a
worker process would.
"""

from __future__ import annotations

import multiprocessing
import queue
from datetime import UTC, datetime

from state import StateStore, StockRow, open_store

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
WORKERS = 8
CUSTOMERS_PER_WORKER = 50
SUPPLY = 100
RESULT_TIMEOUT_S = 120

_spawn = multiprocessing.get_context("spawn")


def _reserve_many(url: str, worker: int, barrier, results, *, customers: int = 50,
                  supply: int = SUPPLY, settle: bool = False) -> None:
    """Worker: open the store, wait for the others, then race to reserve for `customers`.

    With `settle`, every won hold is then confirmed or released at once (or kept), so
    read-then-write transactions race too.
    """
    outcomes: list[tuple[str, str | None, str | None]] = []
    try:
        store = open_store(url)
        try:
            barrier.wait(timeout=RESULT_TIMEOUT_S)
            for n in range(customers):
                customer = f"w{worker}-c{n}"
                try:
                    held = store.reserve(offer_id="drop", supply=supply, customer_id=customer,
                                         decision_id=f"d-{customer}", hold_seconds=600, now=T0)
                    created = held is not None and held.created
                    if created and settle and n % 3 < 2:
                        settle_hold = store.confirm if n % 3 == 0 else store.release
                        settle_hold(decision_id=f"d-{customer}", offer_id="drop", now=T0)
                except Exception as exc:  # reported to the parent, which fails the test
                    outcomes.append((customer, None, repr(exc)))
                else:
                    outcomes.append((customer, held.reservation_id if created else None, None))
        finally:
            store.close()
    except Exception as exc:
        barrier.abort()
        outcomes.append((f"w{worker}", None, repr(exc)))
    results.put(outcomes)


def _upsert_many(url: str, rounds: int, keys: int, barrier) -> None:
    """Worker: rewrite every inventory row `rounds` times, one batch per round."""
    store = open_store(url)
    try:
        barrier.wait(timeout=RESULT_TIMEOUT_S)
        for value in range(1, rounds + 1):
            store.upsert_inventory([StockRow(f"S{k}", None, None, None, value)
                                    for k in range(keys)], now=T0)
    finally:
        store.close()


def _collect(results, count: int) -> list:
    collected = []
    for _ in range(count):
        try:
            collected.extend(results.get(timeout=RESULT_TIMEOUT_S))
        except queue.Empty:
            raise AssertionError("a worker process did not report back") from None
    return collected


def test_racing_workers_never_oversell(store: StateStore, store_url: str, ledger) -> None:
    barrier = _spawn.Barrier(WORKERS)
    results = _spawn.Queue()
    workers = [_spawn.Process(target=_reserve_many, args=(store_url, w, barrier, results))
               for w in range(WORKERS)]
    for process in workers:
        process.start()
    try:
        outcomes = _collect(results, WORKERS)
    finally:
        for process in workers:
            process.join(timeout=RESULT_TIMEOUT_S)
    errors = [error for _, _, error in outcomes if error]
    assert errors == []
    assert len(outcomes) == WORKERS * CUSTOMERS_PER_WORKER
    won = {customer: rid for customer, rid, _ in outcomes if rid}
    assert len(won) == SUPPLY

    rows = store.reservations("drop")
    assert len(rows) == SUPPLY
    assert {r.customer_id: r.reservation_id for r in rows} == won
    assert all(r.status == "reserved" for r in rows)
    counts = store.launch_counts("drop", now=T0)
    assert (counts.reserved, counts.remaining) == (SUPPLY, 0)
    assert ledger("drop") == (SUPPLY, SUPPLY)
    assert all(process.exitcode == 0 for process in workers)


def test_confirm_and_release_race_with_reserve(store: StateStore, store_url: str,
                                              ledger) -> None:
    workers, customers, supply = 4, 40, 30
    barrier = _spawn.Barrier(workers)
    results = _spawn.Queue()
    processes = [_spawn.Process(target=_reserve_many, args=(store_url, w, barrier, results),
                                kwargs={"customers": customers, "supply": supply,
                                        "settle": True})
                 for w in range(workers)]
    for process in processes:
        process.start()
    try:
        outcomes = _collect(results, workers)
    finally:
        for process in processes:
            process.join(timeout=RESULT_TIMEOUT_S)
    assert [error for _, _, error in outcomes if error] == []
    rows = store.reservations("drop")
    assert len(rows) == sum(1 for _, rid, _ in outcomes if rid)
    by_status = {status: sum(r.status == status for r in rows)
                 for status in ("reserved", "confirmed", "released")}
    active = by_status["reserved"] + by_status["confirmed"]
    assert 0 < active <= supply and by_status["released"] > 0
    assert ledger("drop") == (active, active)
    counts = store.launch_counts("drop", now=T0)
    assert (counts.reserved, counts.confirmed) == (by_status["reserved"], by_status["confirmed"])


def test_snapshots_never_see_half_a_batch(store: StateStore, store_url: str) -> None:
    rounds, keys = 30, 40
    store.replace_inventory([StockRow(f"S{k}", None, None, None, 0) for k in range(keys)],
                            now=T0)
    base = store.inventory_version()
    barrier = _spawn.Barrier(2)
    writer = _spawn.Process(target=_upsert_many, args=(store_url, rounds, keys, barrier))
    writer.start()
    try:
        barrier.wait(timeout=RESULT_TIMEOUT_S)
        seen: list[int] = []
        while writer.is_alive() or not seen:
            snapshot = store.stock_snapshot()
            values = {row.on_hand for row in snapshot.rows}
            # every row carries the batch number, which is also how far the version moved
            assert values == {snapshot.version - base}, (snapshot.version, values)
            assert not seen or snapshot.version >= seen[-1]
            seen.append(snapshot.version)
    finally:
        writer.join(timeout=RESULT_TIMEOUT_S)
    assert writer.exitcode == 0
    final = store.stock_snapshot()
    assert final.version == base + rounds
    assert {row.on_hand for row in final.rows} == {rounds}
