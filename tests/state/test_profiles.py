"""Customer profiles in the state store (state/profiles.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from state import StateStore, StateStoreError

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def documents(n: int, **values: object) -> list[tuple[str, str]]:
    return [(f"c{i:05d}", json.dumps({"recency_days": i, **values})) for i in range(n)]


def test_a_load_replaces_every_profile(store: StateStore) -> None:
    assert store.profiles.count() == 0
    assert store.profiles.replace([documents(3, tier="gold")], now=NOW) == 3
    assert store.profiles.replace([documents(2), documents(5)[2:]], now=NOW) == 5

    assert store.profiles.get("c00004") == {"recency_days": 4}
    assert store.profiles.get("c00001") == {"recency_days": 1}  # the old one is gone
    assert store.profiles.get("nobody") is None
    assert store.profiles.estimated_count() == 5  # exact before PostgreSQL has statistics
    assert [cid for cid, _ in store.profiles.sample(2)] == ["c00000", "c00001"]


def test_a_failed_load_leaves_the_old_profiles_serving(store: StateStore) -> None:
    store.profiles.replace([documents(3, tier="gold")], now=NOW)
    duplicate = [("x", "{}"), ("x", "{}")]

    with pytest.raises(StateStoreError, match="load profiles failed"):
        store.profiles.replace([documents(10), duplicate], now=NOW)

    assert store.profiles.count() == 3
    assert store.profiles.get("c00002") == {"recency_days": 2, "tier": "gold"}


def test_the_hot_read_carries_the_profile_in_the_same_statement(store: StateStore) -> None:
    store.profiles.replace([documents(2, tier="gold")], now=NOW)

    known = store.decision_state(customer_id="c00001", channel="web", with_profile=True)
    unknown = store.decision_state(customer_id="nobody", channel="web", with_profile=True)
    without = store.decision_state(customer_id="c00001", channel="web")

    assert known.profile == {"recency_days": 1, "tier": "gold"}
    assert unknown.profile is None
    assert without.profile is None


def test_an_event_applies_once_per_event_id(store: StateStore) -> None:
    from state.profiles import APPLIED, DUPLICATE, ProfileEvent

    def count(profile: dict | None, event: ProfileEvent) -> dict:
        return {"n": (profile or {}).get("n", 0) + 1}

    first = ProfileEvent("e1", "c1", "purchase", NOW, {"amount": 5})
    again = ProfileEvent("e1", "c1", "purchase", NOW, {"amount": 5})
    other = ProfileEvent("e2", "c1", "purchase", NOW)

    assert store.profiles.apply([first, again], count, now=NOW) == [APPLIED, DUPLICATE]
    assert store.profiles.apply([again, other], count, now=NOW) == [DUPLICATE, APPLIED]
    assert store.profiles.get("c1") == {"n": 2}


def test_a_card_finds_its_profile_whether_loaded_or_made_by_an_event(store: StateStore) -> None:
    from state.profiles import ProfileEvent

    store.profiles.replace([[("c1", json.dumps({"loyalty_card": "6001 0000-0001"})),
                             ("c2", json.dumps({"recency_days": 3})),
                             ("c3", json.dumps({"loyalty_card": "77-1"})),
                             ("c4", json.dumps({"loyalty_card": "771"}))]], now=NOW)
    registered = ProfileEvent("r1", "8800", "sign_up", NOW, {"loyalty_card": "88 00"})
    store.profiles.apply([registered], lambda _, e: dict(e.payload), now=NOW)

    assert store.profiles.by_card("600100000001") == [
        ("c1", {"loyalty_card": "6001 0000-0001"})]
    assert [cid for cid, _ in store.profiles.by_card("8800")] == ["8800"]
    # a shared card comes back twice: the caller must not pick one
    assert [cid for cid, _ in store.profiles.by_card("771")] == ["c3", "c4"]
    assert store.profiles.by_card("nobody") == []
