"""The decision core's rules, ranking and reasons as data: pure, no server, no model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning import core
from decisioning.decision import CustomerFacts, Decision, DecisionContext, OfferScores
from decisioning.reasons import (
    BELOW_VALUE_THRESHOLD,
    CONTACT_CAP,
    NO_INCREMENTAL_VALUE,
    NOT_CONTACTABLE,
    NOT_ELIGIBLE,
    OFFER,
    OUT_OF_STOCK,
    OUTRANKED,
    PREORDER,
    WAITLIST,
)
from decisioning.snapshot import ContactHistory, LaunchStatus, StateSnapshot, StockLookup
from features.catalog import Catalog, Launch, Offer
from state.rows import snapshot_of

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def offer(offer_id: str, **kwargs) -> Offer:
    base: dict[str, Any] = {"offer_id": offer_id, "name": offer_id, "category": "x",
                            "margin": 10.0, "cost": 0.1}
    return Offer(**(base | kwargs))


CATALOG = Catalog(offers=(
    offer("plain"),
    offer("gold_only", loyalty_tiers=("gold",)),
    offer("app_only", channels=("app",)),
    offer("launch", sku="SNK", launch=Launch(supply=10, min_customer_value=100.0,
                                             starts_at=NOW - timedelta(days=1),
                                             ends_at=NOW + timedelta(days=1))),
    offer("sized", sku="RUN"),
))
STOCK = snapshot_of(pd.DataFrame([
    {"sku": "SNK", "size": "42", "color": None, "location": None, "on_hand": 5},
    {"sku": "SNK", "size": "44", "color": None, "location": None, "on_hand": 0},
    {"sku": "RUN", "size": "42", "color": None, "location": None, "on_hand": 3},
    {"sku": "RUN", "size": "42", "color": None, "location": "store_1", "on_hand": 0},
    {"sku": "RUN", "size": "43", "color": None, "location": "store_1", "on_hand": 2},
]))


def decide(facts: CustomerFacts, offer_scores: OfferScores, catalog: Catalog,
           ctx: DecisionContext, stock: StockLookup | None = None,
           launches: dict[str, LaunchStatus] | None = None,
           contacts: ContactHistory | None = None) -> Decision:
    """The core's rules and ranking (no holdout: that has tests of its own)."""
    return core.decide(facts, offer_scores, catalog, StateSnapshot(stock, launches or {}, contacts),
                       ctx, core.OFFLINE)


def customer(**kwargs) -> CustomerFacts:
    base: dict[str, Any] = {"customer_id": "c1", "loyalty_tier": "gold", "preferred_size": "42",
                            "value": 500.0}
    return CustomerFacts(**(base | kwargs))


def scores(uplift: list[float]) -> OfferScores:
    u = np.asarray(uplift, dtype=float)
    return OfferScores(u, 0.05 + u, 0.05)


def context(**kwargs) -> DecisionContext:
    base: dict[str, Any] = {"channel": "web", "now": NOW, "limit": 3}
    return DecisionContext(**(base | kwargs))


def reasons(decision: Decision) -> dict[str, str]:
    return {s.offer_id: s.reason for s in decision.suppressed}


def test_ranks_by_expected_incremental_profit_and_explains_each_offer():
    decision = decide(customer(), scores([0.02, 0.05, 0.0, 0.03, 0.015]), CATALOG,
                        context(), STOCK)
    assert [o.offer_id for o in decision.offers] == ["gold_only", "launch", "plain"]
    assert [o.rank for o in decision.offers] == [1, 2, 3]
    assert decision.offers[0].expected_incremental_value == pytest.approx(0.05 * 10 - 0.1)
    assert all(o.reasons and o.reasons[0].code == "incremental_value" for o in decision.offers)
    assert reasons(decision) == {"app_only": NOT_ELIGIBLE, "sized": OUTRANKED}


def test_offer_with_non_positive_value_is_never_recommended():
    decision = decide(customer(), scores([0.01, -0.2, 0.0, 0.0, 0.0]), CATALOG, context(),
                        STOCK)
    assert decision.offers == ()
    assert reasons(decision)["plain"] == NO_INCREMENTAL_VALUE  # 0.01 * 10 - 0.1 = 0


def test_not_contactable_customer_gets_nothing():
    decision = decide(customer(contactable=False), scores([0.5] * 5), CATALOG, context(),
                        STOCK)
    assert decision.offers == ()
    assert set(reasons(decision).values()) == {NOT_CONTACTABLE}
    assert len(decision.suppressed) == len(CATALOG.offers)


def test_tier_and_channel_rules():
    decision = decide(customer(loyalty_tier="bronze"), scores([0.5] * 5), CATALOG,
                        context(limit=5), STOCK)
    assert reasons(decision)["gold_only"] == NOT_ELIGIBLE
    assert reasons(decision)["app_only"] == NOT_ELIGIBLE
    on_app = decide(customer(), scores([0.5] * 5), CATALOG, context(channel="app", limit=5),
                      STOCK)
    assert "app_only" in [o.offer_id for o in on_app.offers]


def test_launch_floor_and_window():
    low = decide(customer(value=99.0), scores([0.5] * 5), CATALOG, context(limit=5), STOCK)
    assert reasons(low)["launch"] == BELOW_VALUE_THRESHOLD
    assert "100.00" in next(s.message for s in low.suppressed if s.offer_id == "launch")
    later = decide(customer(), scores([0.5] * 5), CATALOG,
                     context(limit=5, now=NOW + timedelta(days=3)), STOCK)
    assert reasons(later)["launch"] == NOT_ELIGIBLE


def test_out_of_stock_size_is_suppressed_and_store_stock_is_explained():
    sold_out = decide(customer(preferred_size="44"), scores([0.5] * 5), CATALOG,
                        context(limit=5), STOCK)
    assert reasons(sold_out)["launch"] == OUT_OF_STOCK
    assert reasons(sold_out)["sized"] == OUT_OF_STOCK  # RUN has no size 44 online
    in_store = decide(customer(), scores([0.5] * 5), CATALOG,
                        context(channel="store", store_id="store_1", limit=5), STOCK)
    message = next(s.message for s in in_store.suppressed if s.offer_id == "sized")
    assert "sold out in store_1" in message and "3 online" in message


def test_inventory_matching_rules():
    assert STOCK.units("SNK", "42", "red", None) == 5  # colour-less rows fit any colour
    assert STOCK.units("SNK", None, None, None) == 5  # no preference takes any size
    assert STOCK.units("RUN", "43", None, "store_1") == 2
    assert STOCK.units("NOPE", "42", None, None) == 0


@settings(max_examples=200, deadline=None)
@given(
    uplift=st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=5, max_size=5),
    limit=st.integers(1, 5),
    tier=st.sampled_from(["bronze", "gold", None]),
    size=st.sampled_from(["42", "44", None]),
    value=st.floats(0, 1000),
    contactable=st.booleans(),
    channel=st.sampled_from(["web", "app", "store"]),
)
def test_every_offer_is_shown_or_suppressed_exactly_once(uplift, limit, tier, size, value,
                                                         contactable, channel):
    decision = decide(customer(loyalty_tier=tier, preferred_size=size, value=value,
                                 contactable=contactable),
                        scores(uplift), CATALOG, context(limit=limit, channel=channel), STOCK)
    shown = [o.offer_id for o in decision.offers]
    suppressed = [s.offer_id for s in decision.suppressed]
    assert sorted(shown + suppressed) == sorted(CATALOG.offer_ids)
    assert len(shown) <= limit
    assert all(o.expected_incremental_value > 0 for o in decision.offers)
    values = [o.expected_incremental_value for o in decision.offers]
    assert values == sorted(values, reverse=True)
    if not contactable:
        assert shown == []


# --- live state: launch status, fallbacks, early access, contact caps ----------------------

from features.catalog import ContactPolicy, EarlyAccess  # noqa: E402

DERIVED = Catalog(offers=(
    offer("plain"),
    offer("drop", sku="SNK", fallback="waitlist",
          launch=Launch(supply=10, starts_at=NOW - timedelta(days=1),
                        ends_at=NOW + timedelta(days=1),
                        early_access=EarlyAccess(tiers=("gold",),
                                                 starts_at=NOW - timedelta(days=2)))),
    offer("jacket", sku="JKT", fallback="preorder"),
), contact_policy=ContactPolicy(max_offers=2, window_hours=24, max_declines=2, decline_days=30))
JACKETS = snapshot_of(pd.DataFrame([
    {"sku": "SNK", "size": "42", "color": None, "location": None, "on_hand": 5},
    {"sku": "JKT", "size": None, "color": "red", "location": None, "on_hand": 0},
    {"sku": "JKT", "size": None, "color": "black", "location": None, "on_hand": 4},
]))


def live_decide(launches=None, contacts=None, **kw) -> Decision:
    facts = customer(**({"preferred_color": "red"} | kw.pop("facts", {})))
    return decide(facts, scores([0.02, 0.05, 0.03]), DERIVED, context(**kw), JACKETS,
                    launches, contacts)


def test_derived_launch_floor_names_the_current_floor_and_units_left():
    decision = live_decide({"drop": LaunchStatus(remaining=3, floor=800.0)})
    message = next(s.message for s in decision.suppressed if s.offer_id == "drop")
    assert reasons(decision)["drop"] == BELOW_VALUE_THRESHOLD
    assert "current launch floor 800.00" in message and "3 of 10 units left" in message
    allowed = live_decide({"drop": LaunchStatus(remaining=3, floor=400.0)})
    launch_offer = next(o for o in allowed.offers if o.offer_id == "drop")
    assert launch_offer.action == OFFER
    assert any("3 of 10 units left" in r.message for r in launch_offer.reasons)


def test_sold_out_launch_and_out_of_stock_colour_fall_back_to_waitlist_and_preorder():
    decision = live_decide({"drop": LaunchStatus(remaining=0, floor=0.0)}, limit=2)
    actions = {o.offer_id: o.action for o in decision.offers}
    assert actions == {"drop": WAITLIST, "jacket": PREORDER}
    assert reasons(decision)["plain"] == OUTRANKED  # no contact history given: no cap
    drop = next(o for o in decision.offers if o.offer_id == "drop")
    assert "sold out" in drop.reasons[-1].message
    assert "re-stock waiting list" in drop.reasons[-1].message
    jacket = next(o for o in decision.offers if o.offer_id == "jacket")
    assert "red sold out online" in jacket.reasons[-1].message
    black = live_decide({"drop": LaunchStatus(5, 0.0)}, facts={"preferred_color": "black"})
    assert {o.offer_id: o.action for o in black.offers}["jacket"] == OFFER


def test_stock_reason_names_only_the_variants_the_sku_has():
    """An unsized, uncoloured SKU is not "for size 43 white"; a sized one names the size."""
    from decisioning.stock import stock_check

    stock = snapshot_of(pd.DataFrame([
        {"sku": "BOX", "size": None, "color": None, "location": None, "on_hand": 250},
        {"sku": "RUN", "size": "43", "color": None, "location": None, "on_hand": 37},
        {"sku": "RUN", "size": "44", "color": None, "location": None, "on_hand": 0},
    ]))
    facts = customer(preferred_size="43", preferred_color="white")
    _, boxed = stock_check(offer("box", sku="BOX"), facts, context(), stock)
    assert boxed is not None and boxed.message == "250 left online for BOX"
    assert (boxed.details["size"], boxed.details["color"]) == (None, None)
    _, sized = stock_check(offer("run", sku="RUN"), facts, context(), stock)
    assert sized is not None and sized.message == "37 left online for size 43"
    assert (sized.details["size"], sized.details["color"]) == ("43", None)
    gone, _ = stock_check(offer("run", sku="RUN"), customer(preferred_size="44"), context(), stock)
    assert gone is not None and gone.message == "size 44 sold out online"


def test_early_access_window_opens_first_for_loyal_tiers():
    before = {"now": NOW - timedelta(hours=36)}  # after early access, before the launch
    gold = live_decide({"drop": LaunchStatus(5, 0.0)}, **before)
    assert "drop" in [o.offer_id for o in gold.offers]
    assert any("gold early access" in r.message
               for o in gold.offers if o.offer_id == "drop" for r in o.reasons)
    silver = live_decide({"drop": LaunchStatus(5, 0.0)}, facts={"loyalty_tier": "silver"},
                         **before)
    assert reasons(silver)["drop"] == NOT_ELIGIBLE


def test_contact_caps_limit_offers_per_window_and_suppress_declined_offers():
    fresh = live_decide({"drop": LaunchStatus(5, 0.0)}, ContactHistory(0, {}))
    assert len(fresh.offers) == 2  # cap of 2 per window, below the request's limit of 3
    assert reasons(fresh)["plain"] == CONTACT_CAP
    one_left = live_decide({"drop": LaunchStatus(5, 0.0)}, ContactHistory(1, {}))
    assert len(one_left.offers) == 1
    spent = live_decide({"drop": LaunchStatus(5, 0.0)}, ContactHistory(2, {}))
    assert spent.offers == ()
    assert set(reasons(spent).values()) == {CONTACT_CAP}
    assert "2 offers already made on web in the last 24 h (cap 2)" in spent.suppressed[0].message
    declined = live_decide({"drop": LaunchStatus(5, 0.0)}, ContactHistory(0, {"drop": 2}))
    assert reasons(declined)["drop"] == CONTACT_CAP
    assert "declined 2 times" in next(s.message for s in declined.suppressed
                                      if s.offer_id == "drop")


@settings(max_examples=200, deadline=None)
@given(
    uplift=st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=3, max_size=3),
    limit=st.integers(1, 3),
    remaining=st.integers(0, 10),
    floor=st.floats(0, 1000),
    made=st.integers(0, 4),
    declines=st.integers(0, 3),
    color=st.sampled_from(["red", "black", None]),
)
def test_live_rules_account_for_every_offer_and_respect_the_caps(uplift, limit, remaining, floor,
                                                                 made, declines, color):
    contacts = ContactHistory(made, {"drop": declines})
    decision = decide(customer(preferred_color=color, value=500.0), scores(uplift), DERIVED,
                        context(limit=limit), JACKETS,
                        {"drop": LaunchStatus(remaining, floor)}, contacts)
    shown = [o.offer_id for o in decision.offers]
    assert sorted(shown + [s.offer_id for s in decision.suppressed]) == sorted(DERIVED.offer_ids)
    assert len(shown) <= min(limit, max(0, 2 - made))
    drop = next((o for o in decision.offers if o.offer_id == "drop"), None)
    if drop is not None and drop.action == OFFER:  # a launch unit only when one is left
        assert remaining > 0 and floor <= 500.0 and declines < 2


def test_a_cap_counted_at_write_time_cuts_the_tail_with_its_reason():
    from decisioning.caps import enforce_cap

    assert DERIVED.contact_policy is not None
    decision = live_decide({"drop": LaunchStatus(5, 0.0)}, ContactHistory(0, {}))
    assert len(decision.offers) == 2
    assert enforce_cap(decision, 0, DERIVED.contact_policy, context()) is decision
    cut = enforce_cap(decision, 1, DERIVED.contact_policy, context())
    assert [o.offer_id for o in cut.offers] == [decision.offers[0].offer_id]
    assert cut.chosen_offer == decision.offers[0].offer_id
    late = next(s for s in cut.suppressed if s.offer_id == decision.offers[1].offer_id)
    assert late.reason == CONTACT_CAP
    assert late.details == {"cap": "offers", "offers_in_window": 1, "channel": "web",
                            "window_hours": 24, "limit": 2}
    none_left = enforce_cap(decision, 5, DERIVED.contact_policy, context())
    assert none_left.offers == () and none_left.chosen_offer is None


def test_reasons_carry_their_facts_as_details():
    decision = live_decide({"drop": LaunchStatus(remaining=3, floor=800.0)})
    floor = next(s for s in decision.suppressed if s.offer_id == "drop")
    assert floor.details == {"customer_value": 500.0, "floor": 800.0, "floor_kind": "derived",
                             "remaining": 3, "supply": 10}
    jacket = next(o for o in decision.offers if o.offer_id == "jacket")
    assert jacket.reasons[-1].code == PREORDER
    assert jacket.reasons[-1].details == {"sku": "JKT", "size": None, "color": "red",
                                          "location": None, "units": 0}
    value = jacket.reasons[0]
    assert value.details["value"] == pytest.approx(0.03 * 10 - 0.1)
