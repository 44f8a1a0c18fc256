"""Pruning old history (state.retention), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from state import StateStore
from state.log import DecisionRecord, Outcome
from state.retention import CutoffTooRecent, Pruned, check_cutoff, kept_days, prune

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
OLD, RECENT = NOW - timedelta(days=400), NOW - timedelta(days=5)
CUT = NOW - timedelta(days=365)


def history(store: StateStore) -> None:
    """Two old and one recent decision (with outcomes), contacts, declines and launch holds."""
    for decision_id, when in (("old-1", OLD), ("old-2", OLD), ("new-1", RECENT)):
        store.log.record(DecisionRecord(decision_id, when, "c1", "web", "1", ("a", "b")),
                         count_contacts=True)
        store.log.record_outcome(Outcome(decision_id, "a", "accepted", 0.0, when))
    store.record_decline(customer_id="c1", offer_id="a", now=OLD)
    store.record_decline(customer_id="c1", offer_id="a", now=RECENT)
    for customer, when in (("released-old", OLD), ("sold-old", OLD), ("released-new", RECENT)):
        held = store.reserve(offer_id="L", supply=10, customer_id=customer,
                             decision_id=f"d-{customer}", hold_seconds=60, now=when)
        assert held is not None
        if customer.startswith("sold"):
            store.confirm(decision_id=f"d-{customer}", offer_id="L", now=when)
        else:
            store.release(decision_id=f"d-{customer}", offer_id="L", now=when)


EXPECTED = Pruned(decisions=2, outcomes=2, contacts=4, declines=1, reservations=1)


def test_a_dry_run_counts_what_a_prune_deletes(store: StateStore) -> None:
    history(store)
    assert prune(store, before=CUT, dry_run=True) == EXPECTED
    assert len(store.log.decisions_frame()) == 3  # nothing went
    assert prune(store, before=CUT, batch=1) == EXPECTED  # batch of 1: every loop turns
    assert prune(store, before=CUT) == Pruned()  # nothing left to prune


def test_recent_history_and_sales_stay(store: StateStore) -> None:
    history(store)
    prune(store, before=CUT)
    assert store.log.decisions_frame()["decision_id"].tolist() == ["new-1"]
    assert store.log.outcomes_frame()["decision_id"].tolist() == ["new-1"]
    state = store.decision_state(launch_ids=["L"], customer_id="c1", channel="web",
                                 contacts_since=NOW - timedelta(days=3650),
                                 declines_since=NOW - timedelta(days=3650), now=NOW)
    assert (state.contacts, state.declines) == (2, {"a": 1})
    assert state.launches["L"].confirmed == 1  # the old sale still counts against supply
    assert {r.customer_id for r in store.reservations("L")} == {"sold-old", "released-new"}


def test_a_naive_cut_off_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prune(store, before=datetime(2030, 1, 1))


@pytest.mark.parametrize(("days", "refused"), [(29.5, True), (30, False), (400, False)])
def test_a_cut_off_inside_the_contact_cap_windows_is_refused(days: float, refused: bool) -> None:
    # caps over 48 hours of contacts and 30 days of declines: 30 days must stay
    if refused:
        with pytest.raises(CutoffTooRecent, match="use at least 30") as caught:
            check_cutoff(days, cap_window_hours=48, decline_days=30)
        assert caught.value.needed_days == 30
    else:
        check_cutoff(days, cap_window_hours=48, decline_days=30)
    assert kept_days(cap_window_hours=24 * 45, decline_days=30) == 45
