"""Who gets a scarce launch unit: the launch floor (fixed, or derived from remaining supply).

A launch without a fixed `min_customer_value` gets a floor that moves: built once per model load
from the values of the customers eligible for the launch (`ValueDistribution`), then recomputed
per request from the units left and how much of the launch window is gone (`value_floor`). The
floor rises as stock runs down and falls as the window runs out, so the units go to the
highest-value customers who ask and are not left unsold at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from decisioning.decision import CustomerFacts, DecisionContext
from decisioning.reasons import BELOW_VALUE_THRESHOLD, LAUNCH, OUT_OF_STOCK, Reason, Suppression
from decisioning.snapshot import LaunchStatus
from features.catalog import Catalog, Offer
from features.customers import CustomerTable

# 7 units over a 0.4 * (1 - 0.3) share is 25.000000000000004 customers in floating point;
# without the slack `ceil` would look one customer too deep.
_CEIL_SLACK = 1e-9


@dataclass(frozen=True)
class ValueDistribution:
    """The values of the customers eligible for one launch, sorted descending (read-only)."""

    values: np.ndarray
    #: customers each value stands for: 1 for the whole population, N/n for a sample of n of
    #: N (customers kept in the state store: a worker summarizes a bounded sample)
    weight: float = 1.0

    @classmethod
    def from_values(cls, values: np.ndarray, weight: float = 1.0) -> ValueDistribution:
        """Sort `values` descending; a negative value counts as zero, so floors are never negative.

        Raises ValueError when a value is NaN or infinite (fill missing values before).
        """
        array = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(array).all():
            raise ValueError("customer values must be finite")
        ordered = np.sort(np.maximum(array, 0.0))[::-1].copy()
        ordered.flags.writeable = False
        return cls(ordered, max(1.0, float(weight)))

    def __len__(self) -> int:
        return int(round(len(self.values) * self.weight))

    def top_k_value(self, k: int) -> float:
        """Value of the k-th highest customer (k=1: the highest); 0.0 when k >= len or empty.

        0.0 at k >= len lets everyone in, as the lowest value would. Raises ValueError for k < 1.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if k >= len(self):
            return 0.0
        return float(self.values[min(len(self.values), math.ceil(k / self.weight)) - 1])

    def count_at_least(self, floor: float) -> int:
        """How many eligible customers have a value of at least `floor`."""
        return int(round(np.searchsorted(-self.values, -floor, side="right") * self.weight))


def value_floor(*, remaining: int, supply: int, distribution: ValueDistribution, reach: float,
                elapsed: float | None) -> float:
    """The value a customer must have to get one of the `remaining` units of a launch.

    The floor is set so that the eligible customers still expected to ask, and whose value is
    at least the floor, number `remaining`:

        floor = top_k_value(ceil(remaining / (reach * (1 - elapsed))))

    `reach` (0 < reach <= 1) is the share of eligible customers expected to ask during the whole
    window and `elapsed` (0..1) the share of that demand already come (`demand_arrived`: the
    share of the window gone, when demand is steady), so reach * (1 - elapsed) is the share of
    the eligible population still to ask. Arrivals are in random order with respect to
    value, so those who asked already (given a unit or not) thin every value band alike and the
    k-th highest of the full distribution stays the right quantile without tracking who came.
    Recomputing after every unit is the re-solving heuristic of dynamic allocation: a unit sold
    lowers `remaining` and raises the floor; a window running out with units left lowers it, to
    0.0 when the window is over, so nothing is left unsold by a floor nobody can meet. With no
    end (`elapsed` None) the whole reach is assumed still to come.

    Returns +inf when remaining == 0 (nobody qualifies) and 0.0 when the units outnumber the
    eligible customers still expected to ask (everybody qualifies). Raises ValueError when
    remaining is not in 0..supply, reach not in (0, 1] or elapsed not in 0..1.
    """
    if supply < 1 or not 0 <= remaining <= supply:
        raise ValueError(f"need 0 <= remaining <= supply and supply >= 1, got {remaining}/{supply}")
    if not 0.0 < reach <= 1.0:
        raise ValueError(f"reach must be in (0, 1], got {reach}")
    if elapsed is not None and not 0.0 <= elapsed <= 1.0:
        raise ValueError(f"elapsed must be in 0..1, got {elapsed}")
    if remaining == 0:
        return math.inf
    still_to_ask = reach * (1.0 - (elapsed or 0.0))
    customers = remaining / still_to_ask if still_to_ask > 0 else math.inf
    if customers >= len(distribution):
        return 0.0
    return distribution.top_k_value(max(1, math.ceil(customers - _CEIL_SLACK)))


def qualifies(value: float, floor: float) -> bool:
    """True when a customer of `value` may take a unit under `floor` (a value at the floor does)."""
    return value >= floor


def demand_arrived(elapsed: float | None, arrival_shape: float = 1.0) -> float | None:
    """Share of the window's askers expected to have asked once `elapsed` of it is gone.

    elapsed ** arrival_shape: demand arriving steadily (1.0) makes it the window share itself;
    a front-loaded launch (below 1) has most of its askers early, so a floor that read the
    wall clock would stay too high for too long and leave units unsold.
    """
    if elapsed is None:
        return None
    if arrival_shape <= 0:
        raise ValueError(f"arrival_shape must be positive, got {arrival_shape}")
    return elapsed ** arrival_shape


def window_elapsed(now: datetime, starts_at: datetime | None,
                   ends_at: datetime | None) -> float | None:
    """Share of the launch window gone at `now`, clipped to 0..1; None unless both ends are set."""
    if starts_at is None or ends_at is None:
        return None
    share = (now - starts_at) / (ends_at - starts_at)
    return min(1.0, max(0.0, share))


def launch_distributions(catalog: Catalog, customers: CustomerTable, population: int = 0
                         ) -> dict[str, ValueDistribution]:
    """Per launch offer, the values of the customers who may get it (contactable, right tier).

    Built once per model load: the derived value floor reads it on every decision. `customers`
    may be a sample of `population` customers (customers kept in the state store; 0: it is all
    of them), each value then standing for population / len(customers) customers.
    """
    weight = population / len(customers) if population and len(customers) else 1.0
    result: dict[str, ValueDistribution] = {}
    for offer in catalog.offers:
        if offer.launch is None or offer.launch.min_customer_value is not None:
            continue
        eligible = customers.contactable.astype(bool)
        if offer.loyalty_tiers is not None:
            eligible &= np.isin(customers.loyalty_tier.astype(str), offer.loyalty_tiers)
        result[offer.offer_id] = ValueDistribution.from_values(customers.value[eligible],
                                                               weight)
    return result


def open_launches(catalog: Catalog, now: datetime) -> list[Offer]:
    """The catalog's launch offers whose window has not ended at `now`."""
    return [o for o in catalog.offers if o.launch is not None
            and not (o.launch.ends_at and now > o.launch.ends_at)]


def launch_statuses(catalog: Catalog, held: dict[str, int],
                    distributions: dict[str, ValueDistribution], now: datetime
                    ) -> dict[str, LaunchStatus]:
    """Units left and the floor right now of every open launch, from the units held or sold
    per launch (`held`; a launch missing from it has sold nothing)."""
    statuses: dict[str, LaunchStatus] = {}
    for offer in open_launches(catalog, now):
        launch = offer.launch
        assert launch is not None
        remaining = max(0, launch.supply - held.get(offer.offer_id, 0))
        floor = launch.min_customer_value
        if floor is None:
            distribution = distributions.get(offer.offer_id)
            floor = 0.0 if distribution is None else value_floor(
                remaining=remaining, supply=launch.supply, distribution=distribution,
                reach=launch.expected_reach,
                elapsed=demand_arrived(window_elapsed(now, launch.starts_at, launch.ends_at),
                                       launch.arrival_shape))
        statuses[offer.offer_id] = LaunchStatus(remaining, floor)
    return statuses


def launch_check(offer: Offer, customer: CustomerFacts, status: LaunchStatus | None
                 ) -> Suppression | None:
    """The launch's value floor (fixed, or derived from what is left) and its sell-out."""
    launch = offer.launch
    if launch is None:
        return None
    fixed = launch.min_customer_value
    floor = fixed if fixed is not None else (status.floor if status is not None else 0.0)
    left = (f" ({status.remaining} of {launch.supply} units left)"
            if status is not None else "")
    remaining = None if status is None else status.remaining
    if status is not None and status.remaining <= 0:
        return Suppression(offer.offer_id, OUT_OF_STOCK,
                           f"launch sold out: all {launch.supply} units are held or sold",
                           {"launch": True, "remaining": 0, "supply": launch.supply})
    if customer.value < floor:
        kind = "launch floor" if fixed is not None else "current launch floor"
        return Suppression(offer.offer_id, BELOW_VALUE_THRESHOLD,
                           f"customer value {customer.value:.2f} is below the {kind} "
                           f"{floor:.2f}{left}",
                           {"customer_value": round(customer.value, 2),
                            "floor": round(floor, 2) if math.isfinite(floor) else None,
                            "floor_kind": "fixed" if fixed is not None else "derived",
                            "remaining": remaining, "supply": launch.supply})
    return None


def launch_reason(offer: Offer, customer: CustomerFacts, context: DecisionContext,
                  status: LaunchStatus | None) -> Reason:
    """Why a launch unit goes to this customer: units left, floor met, early access.

    Details: supply, remaining (None without live status), floor and customer_value (when a
    floor applies), early_access (the tier, when it opens early for them).
    """
    launch = offer.launch
    assert launch is not None
    details: dict = {"supply": launch.supply, "remaining": None, "floor": None,
                     "customer_value": None, "early_access": None}
    parts = [f"limited launch: {launch.supply} units"]
    if status is not None:
        details["remaining"] = status.remaining
        parts = [f"limited launch: {status.remaining} of {launch.supply} units left"]
        floor = launch.min_customer_value if launch.min_customer_value is not None \
            else status.floor
        if floor > 0:
            details.update(floor=round(floor, 2), customer_value=round(customer.value, 2))
            parts.append(f"customer value {customer.value:.2f} meets the floor {floor:.2f}")
    early = launch.early_access
    if (early is not None and customer.loyalty_tier in early.tiers and launch.starts_at
            and context.now < launch.starts_at):
        details["early_access"] = customer.loyalty_tier
        parts.append(f"{customer.loyalty_tier} early access")
    return Reason(LAUNCH, "; ".join(parts), details)
