"""The decision funnel against hand-counted logs."""

from __future__ import annotations

import pytest

from reports import ReportError
from reports.funnel import STAGES, funnel
from state import StateStore
from tests.reports import decision, event, write


def report_of(store: StateStore):
    return funnel(store.log.decisions_frame(), store.log.outcomes_frame())


def test_counts_and_conversions_match_hand_counts(store):
    write(store, [
        decision("d1", offers=("A", "B")),  # shown, accepted, purchased
        decision("d2"),  # shown only
        decision("d3", chosen="B"),  # purchased without a reported shown/accept: reached all
        decision("d4"),  # served, nothing reported
        decision("d5", holdout=True),  # eligible; its organic purchase is not a funnel step
        decision("d6", chosen=None),  # no candidate, nothing served: not eligible
        decision("d7", chosen=None, candidates=("C",)),  # eligible, everything suppressed
        decision("d8", chosen="C"),  # served, declined
    ], [
        event("d1", "shown"), event("d1", "accepted"), event("d1", revenue=30.0),
        event("d2", "shown"),
        event("d3", revenue=12.0, offer_id="B"),
        event("d5", revenue=20.0, offer_id=None),
        event("d8", "shown", offer_id="C"), event("d8", "declined", offer_id="C"),
    ])
    report = report_of(store)
    assert [s.name for s in report.stages] == list(STAGES)
    assert [s.count for s in report.stages] == [7, 5, 4, 2, 2]
    assert [s.from_previous for s in report.stages] == [None, 5 / 7, 4 / 5, 2 / 4, 1.0]
    assert [s.from_top for s in report.stages] == [1.0, 5 / 7, 4 / 7, 2 / 7, 2 / 7]
    assert report.constraint == "accepted"  # keeps 50%, the largest relative drop
    assert "'accepted'" in report.constraint_message()
    assert "shown -> accepted keeps 50.0% (4 -> 2)" in report.constraint_message()


def test_constraint_is_the_largest_relative_not_absolute_drop(store):
    # 100 eligible -> 80 recommended (loses 20, keeps 80%) -> 80 shown -> 8 accepted (keeps 10%)
    # -> 2 purchased (keeps 25%): accepted is the constraint
    records = [decision(f"s{i}") for i in range(80)] + \
        [decision(f"x{i}", chosen=None, candidates=("A",)) for i in range(20)]
    outcomes = [event(f"s{i}", "shown") for i in range(80)] + \
        [event(f"s{i}", "accepted") for i in range(8)] + \
        [event(f"s{i}", revenue=5.0) for i in range(2)]
    write(store, records, outcomes)
    report = report_of(store)
    assert [s.count for s in report.stages] == [100, 80, 80, 8, 2]
    assert report.constraint == "accepted"
    frame = report.to_frame()
    assert frame.loc[frame["constraint"], "stage"].tolist() == ["accepted"]


def test_a_funnel_without_losses_has_no_constraint(store):
    write(store, [decision("d1")], [event("d1", "shown"), event("d1", "accepted"),
                                    event("d1", revenue=9.0)])
    report = report_of(store)
    assert [s.count for s in report.stages] == [1] * 5
    assert report.constraint is None
    assert report.constraint_message() == "no stage loses decisions"


def test_empty_stages_have_no_conversion(store):
    write(store, [decision("h1", holdout=True), decision("h2", holdout=True)])
    report = report_of(store)
    assert [s.count for s in report.stages] == [2, 0, 0, 0, 0]
    assert report.stage("shown").from_previous is None
    assert report.constraint == "recommended"


def test_empty_log_raises(store):
    with pytest.raises(ReportError, match="no decisions"):
        report_of(store)
