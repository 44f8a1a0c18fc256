"""Who gets a scarce launch unit: a value floor derived from remaining supply. Pure, NumPy only.

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
