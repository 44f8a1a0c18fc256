"""Customer events applied to profiles (features/events.py): pure, order-independent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import apply_event, as_of

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LOADED = {"frequency": 4, "monetary": 50.0, "return_rate": 0.25, "customer_value": 70.0,
          "recency_days": 90, "contactable": True}


def test_a_purchase_updates_the_order_features_and_the_value() -> None:
    after = apply_event(LOADED, "purchase", T0, amount=100.0)

    assert after["frequency"] == 5
    assert after["monetary"] == pytest.approx(60.0)  # (4 x 50 + 100) / 5
    assert after["return_rate"] == pytest.approx(0.2)  # one return of five orders
    assert after["customer_value"] == pytest.approx(70.0 * 300 / 200)  # same share of spend
    assert as_of(after, T0 + timedelta(days=3))["recency_days"] == 3


def test_a_return_raises_the_return_rate_and_lowers_the_value() -> None:
    after = apply_event(LOADED, "return", T0, amount=50.0)

    assert after["return_rate"] == pytest.approx(0.5)
    assert after["customer_value"] == pytest.approx(70.0 * 150 / 200)
    assert after["frequency"] == 4


def test_the_latest_consent_change_wins_whatever_the_arrival_order() -> None:
    withdrawn = apply_event(LOADED, "consent", T0 + timedelta(hours=2), contactable=False)
    stale = apply_event(withdrawn, "consent", T0 + timedelta(hours=1), contactable=True)

    assert withdrawn["contactable"] is False
    assert stale["contactable"] is False


def test_a_sign_up_starts_a_profile_and_never_overwrites_what_is_known() -> None:
    first = apply_event(None, "purchase", T0 + timedelta(days=1), amount=30.0)
    joined = apply_event(first, "sign_up", T0, attributes={"loyalty_tier": "bronze",
                                                           "frequency": 99})

    assert joined["frequency"] == 1  # not a sign-up column
    assert joined["loyalty_tier"] == "bronze"
    assert as_of(joined, T0 + timedelta(days=10))["tenure_days"] == 10
    with pytest.raises(ValueError, match="unknown event type"):
        apply_event(None, "refund", T0)


EVENT = st.tuples(
    st.sampled_from(["purchase", "return", "consent"]),
    st.integers(0, 10_000),  # minutes after T0
    st.floats(0.0, 500.0, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=60)
@given(st.lists(EVENT, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_profile(events: list, rng) -> None:
    def replay(order: list) -> dict:
        profile: dict = dict(LOADED)
        for kind, minutes, amount, consent in order:
            profile = apply_event(profile, kind, T0 + timedelta(minutes=minutes),
                                  amount=amount, contactable=consent)
        return profile

    shuffled = list(events)
    rng.shuffle(shuffled)
    in_order, out_of_order = replay(events), replay(shuffled)
    same_time_consents = len({m for k, m, _, _ in events if k == "consent"}) < sum(
        k == "consent" for k, *_ in events)
    for key in set(in_order) | set(out_of_order):
        if key in ("contactable", "_consent_at") and same_time_consents:
            continue  # two consent changes at the same instant: either may win
        a, b = in_order.get(key), out_of_order.get(key)
        if isinstance(a, float) or isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-4), key
        else:
            assert a == b, key
