"""Campaign state and campaign logging, on each backend: one snapshot, idempotent writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from state import StateStore, StockRow
from state.log import DecisionRecord

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def record(customer_id: str, offers: tuple[str, ...], *, campaign: str = "spring",
           holdout: bool = False) -> DecisionRecord:
    return DecisionRecord(decision_id=f"campaign:{campaign}:{customer_id}", decided_at=NOW,
                          customer_id=customer_id, channel="email", model_version="3",
                          offer_ids=offers, holdout=holdout)


def test_campaign_state_reads_stock_holds_contacts_and_declines_together(store: StateStore):
    store.replace_inventory([StockRow("SKU", "42", None, None, 3)], now=NOW)
    store.record_contacts(customer_id="a", channel="email", offer_ids=["x", "y"],
                          now=NOW - timedelta(hours=2))
    store.record_contacts(customer_id="a", channel="web", offer_ids=["x"], now=NOW)
    store.record_contacts(customer_id="b", channel="email", offer_ids=["x"],
                          now=NOW - timedelta(days=3))  # outside the window
    store.record_decline(customer_id="b", offer_id="x", now=NOW - timedelta(days=1))
    store.reserve(offer_id="drop", supply=10, customer_id="c", decision_id="d1",
                  hold_seconds=900, now=NOW)
    state = store.campaign_state(channel="email", now=NOW,
                                 contacts_since=NOW - timedelta(hours=24),
                                 declines_since=NOW - timedelta(days=30))
    assert state.stock.units("SKU", "42", None, None) == 3
    assert state.held == {"drop": 1}
    assert state.contacts == {"a": 2}
    assert state.declines == {"b": {"x": 1}}
    later = store.campaign_state(channel="email", now=NOW + timedelta(hours=1),
                                 contacts_since=None, declines_since=None)
    assert later.held == {} and later.contacts == {} and later.declines == {}  # hold expired


def test_logging_a_campaign_again_adds_no_decision_and_no_contact(store: StateStore):
    first = [record("a", ("x", "y")), record("b", ()), record("c", (), holdout=True)]
    assert store.log_campaign(first, count_contacts=True) == 3
    again = [*first, record("d", ("x",)), record("d", ("x",))]  # and a new customer, twice
    assert store.log_campaign(again, count_contacts=True) == 1
    frame = store.log.decisions_frame()
    assert sorted(frame["decision_id"]) == [f"campaign:spring:{c}" for c in "abcd"]
    assert frame.set_index("customer_id")["holdout"].to_dict() == {
        "a": False, "b": False, "c": True, "d": False}
    since = NOW - timedelta(hours=1)
    assert store.contacts_since(customer_id="a", channel="email", since=since) == 2
    assert store.contacts_since(customer_id="d", channel="email", since=since) == 1
    other = store.log_campaign([record("a", ("x",), campaign="summer")], count_contacts=False)
    assert other == 1  # another campaign is another decision; counting is the caller's choice
    assert store.contacts_since(customer_id="a", channel="email", since=since) == 2



def test_a_record_survives_its_json_as_a_spark_campaign_ships_it() -> None:
    import numpy as np

    from state.log import Candidate, record_json, record_of_json

    original = DecisionRecord(
        decision_id="campaign:spring:c1", decided_at=NOW, customer_id="c1", channel="email",
        model_version="3", offer_ids=("a", "b"), chosen_offer="a", propensity=0.25,
        candidates=(Candidate("a", 1.5, 0.03125), Candidate("b", -0.1, 0.001)),
        suppressed={"c": "contact_cap"}, segment="gold",
        features={"age": np.int64(41), "spend": np.float64(0.1 + 0.2), "tier": "gold"})
    back = record_of_json(record_json(original))
    assert back.decided_at == NOW and back.candidates == original.candidates
    assert (back.offer_ids, back.suppressed, back.propensity) == (("a", "b"), {"c": "contact_cap"},
                                                                  0.25)
    assert back.features == {"age": 41, "spend": 0.1 + 0.2, "tier": "gold"}
    assert record_json(back) == record_json(original)  # what the log stores: the same row
