"""Customer events applied to a stored profile: pure functions, one per kind of event.

The profile's contract columns keep the meaning the training data gives them (the demo's and
docs/data-contract.md's): `frequency` orders, `monetary` the average order value (of
purchases), `return_rate` the share of orders returned, `contactable` the consent,
`customer_value` the retailer's value figure, `recency_days` / `tenure_days` days since the
last purchase / sign-up.

Events may arrive late and out of order, so every update either commutes (counts and sums:
any order gives the same profile) or is decided by the event's own time, not by arrival
(the latest purchase sets recency; the latest consent change wins). Book-keeping the features
need for that lives in the profile under keys starting with "_" (never model features).
Days-since features are worked out at decision time (`as_of`), so they do not go stale between
events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

EventType = Literal["purchase", "return", "consent", "sign_up"]
EVENT_TYPES: tuple[str, ...] = ("purchase", "return", "consent", "sign_up")

LAST_PURCHASE = "_last_purchase_at"
SIGNED_UP = "_signed_up_at"
CONSENT_AT = "_consent_at"
SPEND = "_spend"  # net spend (purchases less returns): what customer_value follows
GROSS = "_gross"  # purchases only: monetary is gross / frequency
VALUE_PER_SPEND = "_value_per_spend"  # customer_value / net spend before the first event
RETURNS = "_returns"
#: a sign-up may carry these columns of the contract (what a first visit knows)
SIGN_UP_COLUMNS = ("channel", "loyalty_tier", "preferred_size", "preferred_color",
                   "contactable", "loyalty_card")


def apply_event(profile: Mapping[str, Any] | None, kind: str, occurred_at: datetime, *,
                amount: float = 0.0, contactable: bool | None = None,
                attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The profile after one event (a new profile when `profile` is None: a first event).

    purchase: one more order of `amount`; return: one order (of `amount`) returned;
    consent: `contactable` set, unless a later consent change is already applied; sign_up:
    `attributes` (SIGN_UP_COLUMNS) fill what the profile does not have yet. ValueError for an
    unknown kind.
    """
    out = dict(profile or {})
    at = occurred_at.astimezone(UTC)
    if kind == "purchase":
        orders, spend, gross = _orders(out), _spend(out), _gross(out)
        out["frequency"] = orders + 1
        out[SPEND] = round(spend + amount, 6)
        out[GROSS] = round(gross + amount, 6)
        out["monetary"] = round(out[GROSS] / out["frequency"], 6)
        _rescale_value(out, spend, out[SPEND])
        _returns(out)  # kept as a count: the rate follows the new number of orders
        out["return_rate"] = _rate(out[RETURNS], out["frequency"])
        if _later(at, out.get(LAST_PURCHASE)):
            out[LAST_PURCHASE] = at.isoformat()
    elif kind == "return":
        orders, spend = _orders(out), _spend(out)
        out[RETURNS] = _returns(out) + 1
        out["return_rate"] = _rate(out[RETURNS], max(orders, out[RETURNS]))
        out[SPEND] = round(spend - amount, 6)  # not clipped: sums commute
        _rescale_value(out, spend, out[SPEND])
    elif kind == "consent":
        if contactable is None:
            raise ValueError("a consent event needs `contactable`")
        if _later(at, out.get(CONSENT_AT), ties=True):
            out["contactable"] = bool(contactable)
            out[CONSENT_AT] = at.isoformat()
    elif kind == "sign_up":
        for column, value in (attributes or {}).items():
            if column in SIGN_UP_COLUMNS and out.get(column) is None:
                out[column] = value
        if out.get(SIGNED_UP) is None or _later(out[SIGNED_UP], at):  # the earliest counts
            out[SIGNED_UP] = at.isoformat()
        out.setdefault("frequency", 0)
    else:
        raise ValueError(f"unknown event type {kind!r}; expected one of {EVENT_TYPES}")
    return out


def as_of(profile: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
    """The profile's days-since features at `now` (from the event times it has seen)."""
    last, signed = profile.get(LAST_PURCHASE), profile.get(SIGNED_UP)
    if last is None and signed is None:
        return profile
    out = dict(profile)
    if last is not None:
        out["recency_days"] = _days(now, last)
    if signed is not None and out.get("tenure_days") is None:
        out["tenure_days"] = _days(now, signed)
    return out


def _days(now: datetime, iso: str) -> int:
    return max(0, (now - datetime.fromisoformat(iso)) // timedelta(days=1))


def _later(at: datetime | str | None, than: datetime | str | None, ties: bool = False) -> bool:
    """Whether `at` is after `than` (None: never / always); ISO strings are parsed."""
    if at is None:
        return False
    if than is None:
        return True
    a = datetime.fromisoformat(at) if isinstance(at, str) else at
    b = datetime.fromisoformat(than) if isinstance(than, str) else than
    return a >= b if ties else a > b


def _number(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _orders(profile: dict[str, Any]) -> int:
    return int(_number(profile.get("frequency")))


def _spend(profile: dict[str, Any]) -> float:
    """Net spend: kept exactly once events arrive; frequency x monetary before."""
    if profile.get(SPEND) is not None:
        return float(profile[SPEND])
    return _orders(profile) * float(_number(profile.get("monetary")))


def _gross(profile: dict[str, Any]) -> float:
    """Gross spend (purchases only): kept once events arrive; frequency x monetary before."""
    if profile.get(GROSS) is not None:
        return float(profile[GROSS])
    return _orders(profile) * float(_number(profile.get("monetary")))


def _returns(profile: dict[str, Any]) -> int:
    """Orders returned: kept exactly once events arrive; rate x orders (rounded) before."""
    if profile.get(RETURNS) is None:
        profile[RETURNS] = int(round(_number(profile.get("return_rate")) * _orders(profile)))
    return int(profile[RETURNS])


def _rate(returns: int, orders: int) -> float:
    return round(min(1.0, returns / orders), 6) if orders else 0.0


def _rescale_value(profile: dict[str, Any], before: float, after: float) -> None:
    """A given customer_value keeps the ratio to net spend it had before the first event
    (without one, the model predicts it from the updated features at decision time)."""
    if profile.get(VALUE_PER_SPEND) is None:
        value = profile.get("customer_value")
        if value is None or before <= 0:
            return
        profile[VALUE_PER_SPEND] = float(value) / before
    profile["customer_value"] = round(max(0.0, profile[VALUE_PER_SPEND] * after), 6)
