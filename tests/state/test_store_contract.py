"""The state-store contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state import (
    LaunchCounts,
    StateStore,
    StateStoreError,
    StockRow,
    StockSnapshot,
    mask_url,
    open_store,
)

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
HOLD = 600

ROWS = [
    StockRow("SNK", "42", None, None, 5),  # online, size 42, any colour
    StockRow("SNK", "44", "red", None, 2),
    StockRow("SNK", None, "blue", None, 1),  # any size, blue
    StockRow("SNK", "42", None, "store_1", 3),  # a store
    StockRow("RUN", None, None, None, 7),  # any variant
]


def reserve(store: StateStore, customer: str, *, supply: int = 3, offer: str = "L",
            now: datetime = T0, hold: int = HOLD):
    """Reserve with the decision id derived from the customer (one decision per customer)."""
    return store.reserve(offer_id=offer, supply=supply, customer_id=customer,
                         decision_id=f"d-{customer}", hold_seconds=hold, now=now)


# ---------------------------------------------------------------- inventory


def test_a_new_store_is_empty(store: StateStore) -> None:
    assert store.inventory_version() == 0
    snapshot = store.stock_snapshot()
    assert snapshot.rows == () and snapshot.version == 0
    assert snapshot.units("SNK", None, None, None) == 0


def test_replace_loads_a_full_snapshot_and_moves_the_version(store: StateStore) -> None:
    assert store.replace_inventory(ROWS, now=T0) == len(ROWS)
    first = store.stock_snapshot()
    assert set(first.rows) == set(ROWS)  # None survives the round trip ('' in the table)
    assert first.version == store.inventory_version() > 0

    assert store.replace_inventory([StockRow("NEW", None, None, None, 1)], now=T0) == 1
    second = store.stock_snapshot()
    assert second.rows == (StockRow("NEW", None, None, None, 1),)
    assert second.version > first.version
    assert second.units("SNK", None, None, None) == 0

    store.replace_inventory([], now=T0)
    assert store.stock_snapshot().rows == ()
    assert store.inventory_version() > second.version


def test_upsert_sets_known_keys_adds_new_ones_and_moves_the_version_once(
        store: StateStore) -> None:
    store.replace_inventory(ROWS, now=T0)
    before = store.inventory_version()
    written = store.upsert_inventory([StockRow("SNK", "42", None, None, 0),
                                      StockRow("SNK", "42", None, "store_2", 4)], now=T0)
    assert written == 2
    assert store.inventory_version() == before + 1
    snapshot = store.stock_snapshot()
    assert len(snapshot.rows) == len(ROWS) + 1
    assert snapshot.units("SNK", "42", None, None) == 0 + 1  # the 42 row emptied; blue fits
    assert snapshot.units("SNK", "42", None, "store_2") == 4
    assert snapshot.units("RUN", "40", "green", None) == 7  # untouched rows stay

    assert store.upsert_inventory([], now=T0) == 0
    assert store.inventory_version() == before + 1  # nothing written, nothing moved


def test_units_follow_the_size_colour_and_location_rules(store: StateStore) -> None:
    store.replace_inventory(ROWS, now=T0)
    snapshot = store.stock_snapshot()
    assert snapshot.units("SNK", "42", None, None) == 5 + 1  # 42 + the any-size blue row
    assert snapshot.units("SNK", "44", "red", None) == 2 + 0  # blue does not fit red
    assert snapshot.units("SNK", "44", "blue", None) == 1
    assert snapshot.units("SNK", None, None, None) == 5 + 2 + 1  # no preference takes all
    assert snapshot.units("SNK", "42", None, "store_1") == 3  # exactly that location
    assert snapshot.units("SNK", "44", None, "store_1") == 0
    assert snapshot.units("SNK", "42", None, "store_9") == 0
    assert snapshot.units("NOPE", None, None, None) == 0
    with pytest.raises(FrozenInstanceError):
        snapshot.version = 99  # type: ignore[misc]


def test_invalid_rows_are_refused_and_change_nothing(store: StateStore) -> None:
    store.replace_inventory(ROWS, now=T0)
    version = store.inventory_version()
    with pytest.raises(ValueError, match="negative"):
        store.upsert_inventory([StockRow("SNK", "42", None, None, -1)], now=T0)
    with pytest.raises(ValueError, match="twice"):
        store.replace_inventory([ROWS[0], ROWS[0]], now=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.replace_inventory(ROWS, now=datetime(2030, 1, 1))  # naive
    assert store.inventory_version() == version
    assert set(store.stock_snapshot().rows) == set(ROWS)


def test_data_outlives_the_store_object(store: StateStore, store_url: str) -> None:
    store.replace_inventory(ROWS, now=T0)
    reserve(store, "c1")
    with open_store(store_url) as again:  # creating the schema again is a no-op
        assert set(again.stock_snapshot().rows) == set(ROWS)
        assert again.launch_counts("L", now=T0) == LaunchCounts("L", 3, 1, 0)


# Any rows, any question: the snapshot answers as the contract's rules say, computed plainly.
_VALUES = st.sampled_from([None, "a", "b"])


@settings(max_examples=100, deadline=None, database=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["X", "Y"]), _VALUES, _VALUES, _VALUES,
                               st.integers(0, 9)),
                     unique_by=lambda row: row[:4], max_size=12),
       query=st.tuples(st.sampled_from(["X", "Y", "Z"]), _VALUES, _VALUES, _VALUES))
def test_snapshot_units_follow_the_matching_rules(rows, query) -> None:
    snapshot = StockSnapshot.from_rows(StockRow(*row) for row in rows)
    sku, size, color, location = query
    expected = sum(on_hand for r_sku, r_size, r_color, r_location, on_hand in rows
                   if r_sku == sku and r_location == location
                   and (r_size is None or size is None or r_size == size)
                   and (r_color is None or color is None or r_color == color))
    assert snapshot.units(*query) == expected


# ---------------------------------------------------------------- launches


def test_reserve_until_sold_out(store: StateStore, ledger) -> None:
    held = [reserve(store, f"c{i}") for i in range(3)]
    assert all(r is not None and r.created and r.status == "reserved" for r in held)
    assert held[0].expires_at == T0 + timedelta(seconds=HOLD)
    assert reserve(store, "c3") is None
    assert reserve(store, "c4") is None
    counts = store.launch_counts("L", now=T0)
    assert counts == LaunchCounts("L", supply=3, reserved=3, confirmed=0)
    assert counts.remaining == 0
    assert sorted(r.customer_id for r in store.reservations("L")) == ["c0", "c1", "c2"]
    assert ledger("L") == (3, 3)


def test_a_customer_gets_their_existing_hold_back(store: StateStore, ledger) -> None:
    first = reserve(store, "c1")
    again = store.reserve(offer_id="L", supply=3, customer_id="c1", decision_id="other",
                          hold_seconds=HOLD, now=T0 + timedelta(seconds=5))
    assert again is not None and not again.created
    assert again.reservation_id == first.reservation_id and again.decision_id == "d-c1"
    assert store.launch_counts("L", now=T0).reserved == 1
    store.confirm(decision_id="d-c1", offer_id="L", now=T0)
    bought = reserve(store, "c1")
    assert bought.status == "confirmed" and not bought.created  # a buyer gets no second unit
    assert len(store.reservations("L")) == 1
    assert ledger("L") == (1, 1)


def test_confirm_turns_a_hold_into_a_sale_once(store: StateStore, ledger) -> None:
    held = reserve(store, "c1")
    confirmed = store.confirm(decision_id="d-c1", offer_id="L", now=T0 + timedelta(seconds=10))
    assert confirmed is not None and confirmed.status == "confirmed"
    assert confirmed.reservation_id == held.reservation_id
    again = store.confirm(decision_id="d-c1", offer_id="L", now=T0 + timedelta(days=1))
    assert again == confirmed  # idempotent, and a sale never expires
    assert store.launch_counts("L", now=T0 + timedelta(days=1)) == LaunchCounts("L", 3, 0, 1)
    assert store.confirm(decision_id="nope", offer_id="L", now=T0) is None
    assert store.confirm(decision_id="d-c1", offer_id="no-such-launch", now=T0) is None
    assert ledger("L") == (1, 1)


def test_release_frees_the_unit_and_is_idempotent(store: StateStore, ledger) -> None:
    for customer in ("c1", "c2"):
        reserve(store, customer, supply=2)
    assert reserve(store, "c3", supply=2) is None
    released = store.release(decision_id="d-c1", offer_id="L", now=T0)
    assert released is not None and released.status == "released"
    assert store.release(decision_id="d-c1", offer_id="L", now=T0) == released
    assert store.launch_counts("L", now=T0) == LaunchCounts("L", 2, 1, 0)
    assert ledger("L") == (1, 1)
    assert reserve(store, "c3", supply=2).created  # the freed unit goes to someone else
    assert store.confirm(decision_id="d-c1", offer_id="L", now=T0) is None  # released is over
    assert store.release(decision_id="nope", offer_id="L", now=T0) is None
    assert ledger("L") == (2, 2)


def test_release_leaves_a_sale_alone(store: StateStore, ledger) -> None:
    reserve(store, "c1")
    store.confirm(decision_id="d-c1", offer_id="L", now=T0)
    assert store.release(decision_id="d-c1", offer_id="L", now=T0).status == "confirmed"
    assert store.launch_counts("L", now=T0) == LaunchCounts("L", 3, 0, 1)
    assert ledger("L") == (1, 1)


def test_holds_expire(store: StateStore, ledger) -> None:
    reserve(store, "c1", supply=2, hold=60)
    reserve(store, "c2", supply=2, hold=600)
    later = T0 + timedelta(seconds=60)  # expires_at <= now: expired
    assert store.launch_counts("L", now=later) == LaunchCounts("L", 2, 1, 0)
    assert ledger("L") == (2, 2)  # counts exclude it at once; the row waits for expiry
    assert store.confirm(decision_id="d-c1", offer_id="L", now=later) is None
    assert ledger("L") == (1, 1)  # the failed confirm expired it
    assert store.expire_holds(now=later) == 0
    assert {r.customer_id: r.status for r in store.reservations("L")} == {
        "c1": "expired", "c2": "reserved"}
    again = reserve(store, "c1", supply=2, now=later)  # may try again, with a new hold
    assert again.created and again.status == "reserved"
    assert ledger("L") == (2, 2)


def test_expire_holds_sweeps_every_launch(store: StateStore, ledger) -> None:
    for offer in ("A", "B"):
        reserve(store, "c1", offer=offer, hold=60)
        reserve(store, "c2", offer=offer, hold=600)
    store.confirm(decision_id="d-c1", offer_id="B", now=T0)
    assert store.expire_holds(now=T0 + timedelta(seconds=59)) == 0
    assert store.expire_holds(now=T0 + timedelta(seconds=61)) == 1  # A's c1; B's c1 bought
    assert store.expire_holds(now=T0 + timedelta(seconds=61)) == 0
    assert ledger("A") == (1, 1) and ledger("B") == (2, 2)
    assert store.expire_holds(now=T0 + timedelta(days=1)) == 2


def test_reserve_expires_overdue_holds_to_make_room(store: StateStore, ledger) -> None:
    reserve(store, "c1", supply=1, hold=60)
    assert reserve(store, "c2", supply=1, now=T0 + timedelta(seconds=59)) is None
    taken = reserve(store, "c2", supply=1, now=T0 + timedelta(seconds=60))
    assert taken is not None and taken.created
    assert ledger("L") == (1, 1)


def test_release_after_expiry_reports_expired(store: StateStore, ledger) -> None:
    reserve(store, "c1", hold=60)
    late = store.release(decision_id="d-c1", offer_id="L", now=T0 + timedelta(seconds=90))
    assert late.status == "expired"
    assert ledger("L") == (0, 0)


def test_the_catalog_may_change_supply(store: StateStore, ledger) -> None:
    for customer in ("c1", "c2"):
        reserve(store, customer, supply=2)
    assert reserve(store, "c3", supply=2) is None
    assert reserve(store, "c3", supply=3).created  # more supply: more units
    assert reserve(store, "c4", supply=1) is None  # cut below what is held
    counts = store.launch_counts("L", now=T0)
    assert (counts.supply, counts.reserved, counts.remaining) == (1, 3, 0)
    assert ledger("L") == (3, 3)
    assert store.launch_counts("never", now=T0) is None


def test_timestamps_come_back_in_utc(store: StateStore) -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    held = reserve(store, "c1", now=local)
    stored = store.reservations("L")[0]
    assert stored.expires_at == held.expires_at == T0 + timedelta(seconds=HOLD)
    assert stored.expires_at.tzinfo == UTC


def _forked_worker(store: StateStore) -> None:
    store.after_fork()  # what gunicorn's post_fork hook does
    # the parent's idle connections, if any (QueuePool's count; Pool does not declare it)
    inherited = store.db.engine.pool.checkedin()  # type: ignore[attr-defined]
    held = reserve(store, "child")
    os._exit(0 if inherited == 0 and held is not None and held.created else 1)


def test_a_forked_worker_gets_its_own_connections(store: StateStore) -> None:
    reserve(store, "parent")  # the parent's pool now holds an open connection
    child = multiprocessing.get_context("fork").Process(target=_forked_worker, args=(store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert store.launch_counts("L", now=T0).reserved == 2  # the parent's connection still works


_OPS = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.integers(0, 5)),
    st.tuples(st.just("confirm"), st.integers(0, 5)),
    st.tuples(st.just("release"), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.integers(0, 120)),
    st.tuples(st.just("supply"), st.integers(0, 4)),
    st.tuples(st.just("sweep"), st.just(0)),
), max_size=25)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, offer=st.uuids())
def test_reservations_never_exceed_supply(store: StateStore, ledger, ops, offer) -> None:
    """Any sequence of calls: a new hold never takes the launch past supply, the counter and
    the table agree, and no customer ever holds two units."""
    offer_id, now, supply = offer.hex, T0, 3  # a fresh launch for every example
    for op, arg in ops:
        customer = f"c{arg}"
        if op == "reserve":
            held = reserve(store, customer, offer=offer_id, supply=supply, now=now, hold=60)
            if held is not None and held.created:
                assert ledger(offer_id)[1] <= supply
        elif op == "confirm":
            store.confirm(decision_id=f"d-{customer}", offer_id=offer_id, now=now)
        elif op == "release":
            store.release(decision_id=f"d-{customer}", offer_id=offer_id, now=now)
        elif op == "wait":
            now += timedelta(seconds=arg)
        elif op == "supply":
            supply = arg
        else:
            store.expire_holds(now=now)
        rows = store.reservations(offer_id)
        if rows:
            held_units, active = ledger(offer_id)
            assert held_units == active
            live = [r.customer_id for r in rows if r.status in ("reserved", "confirmed")]
            assert len(live) == len(set(live))
            counts = store.launch_counts(offer_id, now=now)
            assert counts.reserved + counts.confirmed <= active


# ---------------------------------------------------------------- contact policy


def test_contacts_count_per_customer_and_channel_within_the_window(store: StateStore) -> None:
    store.record_contacts(customer_id="c1", channel="email", offer_ids=["a", "b"], now=T0)
    store.record_contacts(customer_id="c1", channel="email", offer_ids=["a"],
                          now=T0 + timedelta(days=3))
    store.record_contacts(customer_id="c1", channel="app", offer_ids=["a"], now=T0)
    store.record_contacts(customer_id="c2", channel="email", offer_ids=["a"], now=T0)
    store.record_contacts(customer_id="c1", channel="email", offer_ids=[], now=T0)

    def count(since: datetime) -> int:
        return store.contacts_since(customer_id="c1", channel="email", since=since)

    assert count(T0 - timedelta(days=1)) == 3
    assert count(T0) == 3  # the window includes its start
    assert count(T0 + timedelta(seconds=1)) == 1
    assert count(T0 + timedelta(days=4)) == 0
    assert store.contacts_since(customer_id="c1", channel="app", since=T0) == 1
    assert store.contacts_since(customer_id="nobody", channel="email", since=T0) == 0


def test_declines_count_per_offer_within_the_window(store: StateStore) -> None:
    for days, offer in ((0, "a"), (1, "a"), (2, "b")):
        store.record_decline(customer_id="c1", offer_id=offer, now=T0 + timedelta(days=days))
    store.record_decline(customer_id="c2", offer_id="a", now=T0)
    assert store.declines_since(customer_id="c1", since=T0) == {"a": 2, "b": 1}
    assert store.declines_since(customer_id="c1", since=T0 + timedelta(hours=1)) == {
        "a": 1, "b": 1}
    assert store.declines_since(customer_id="c1", since=T0 + timedelta(days=3)) == {}


# ---------------------------------------------------------------- opening


@pytest.mark.parametrize(("url", "problem"), [
    ("not a url", "not a database URL"),
    ("mysql://u@db/x", "unsupported scheme 'mysql'"),
    ("sqlite://", "in-memory"),
    ("sqlite:////no/such/dir/state.db", "does not exist"),
    ("postgresql://u@db", "no database name"),
    ("postgresql://nba:s3cret@127.0.0.1:1/nba", "Connection refused"),
])
def test_a_bad_url_raises_a_clear_error(url: str, problem: str) -> None:
    with pytest.raises(StateStoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert mask_url(url) in message and problem in message
    assert "s3cret" not in message


def test_an_unknown_postgres_database_is_named(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/nba_no_such_db"
    with pytest.raises(StateStoreError, match='database "nba_no_such_db" does not exist'):
        open_store(url)


def test_the_url_is_shown_without_its_password() -> None:
    assert mask_url("postgresql://nba:s3cret@db:5432/nba") == "postgresql://nba:***@db:5432/nba"
    assert mask_url("postgresql://db/nba?password=s3cret") == "postgresql://db/nba?password=***"
    assert mask_url("sqlite:///state.db") == "sqlite:///state.db"


def test_decision_state_reads_what_one_decision_needs_in_one_go(store: StateStore) -> None:
    store.upsert_inventory([StockRow("S", None, None, None, 4)], now=T0)
    reserve(store, "c1")
    reserve(store, "c2", supply=5, offer="M")
    store.confirm(decision_id="d-c2", offer_id="M", now=T0)
    store.record_contacts(customer_id="c1", channel="web", offer_ids=["a", "b"], now=T0)
    store.record_contacts(customer_id="c1", channel="web", offer_ids=["c"],
                          now=T0 - timedelta(days=2))
    store.record_decline(customer_id="c1", offer_id="a", now=T0)
    state = store.decision_state(launch_ids=["L", "M", "never"], customer_id="c1",
                                 channel="web", contacts_since=T0 - timedelta(hours=1),
                                 declines_since=T0 - timedelta(days=30), now=T0)
    assert state.inventory_version == store.inventory_version()
    assert state.launches == {"L": LaunchCounts("L", 3, 1, 0), "M": LaunchCounts("M", 5, 0, 1)}
    assert (state.contacts, state.declines) == (2, {"a": 1})
    later = store.decision_state(launch_ids=["L"], customer_id="c1", channel="web",
                                 contacts_since=None, declines_since=None,
                                 now=T0 + timedelta(seconds=HOLD + 1))
    assert later.launches["L"].reserved == 0  # an overdue hold no longer counts
    assert (later.contacts, later.declines) == (0, {})
