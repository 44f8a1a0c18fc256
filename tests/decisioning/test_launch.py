"""The value-based launch floor, pure: known answers, invariants and a seeded simulation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisioning.launch import (
    ValueDistribution,
    demand_arrived,
    qualifies,
    value_floor,
    window_elapsed,
)

#: Values 100, 99, ..., 1: the k-th highest is 101 - k.
HUNDRED = ValueDistribution.from_values(np.arange(1.0, 101.0))

values_lists = st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=0, max_size=200)
reaches = st.floats(0.01, 1.0)
shares = st.floats(0.0, 1.0)


def floor(remaining: int, *, supply: int = 100, distribution: ValueDistribution = HUNDRED,
          reach: float = 1.0, elapsed: float | None = 0.0) -> float:
    return value_floor(remaining=remaining, supply=supply, distribution=distribution,
                       reach=reach, elapsed=elapsed)


def test_distribution_is_sorted_descending_and_read_only() -> None:
    distribution = ValueDistribution.from_values(np.array([3.0, 1.0, 2.0]))
    assert distribution.values.tolist() == [3.0, 2.0, 1.0]
    assert len(distribution) == 3
    with pytest.raises(ValueError):
        distribution.values[0] = 9.0


def test_negative_values_count_as_zero_and_non_finite_values_are_rejected() -> None:
    assert ValueDistribution.from_values(np.array([-5.0, 2.0])).values.tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="finite"):
        ValueDistribution.from_values(np.array([1.0, np.nan]))


@pytest.mark.parametrize(("k", "expected"), [(1, 100.0), (2, 99.0), (50, 51.0), (99, 2.0),
                                             (100, 0.0), (101, 0.0), (10**9, 0.0)])
def test_top_k_value(k: int, expected: float) -> None:
    assert HUNDRED.top_k_value(k) == expected


def test_top_k_value_of_an_empty_distribution_is_zero() -> None:
    assert ValueDistribution.from_values(np.array([])).top_k_value(1) == 0.0


@pytest.mark.parametrize("k", [0, -1])
def test_top_k_value_needs_a_positive_k(k: int) -> None:
    with pytest.raises(ValueError):
        HUNDRED.top_k_value(k)


@pytest.mark.parametrize(("floor_value", "count"), [(100.0, 1), (99.5, 1), (51.0, 50), (0.0, 100),
                                                    (101.0, 0)])
def test_count_at_least(floor_value: float, count: int) -> None:
    assert HUNDRED.count_at_least(floor_value) == count


def test_nobody_qualifies_when_nothing_remains() -> None:
    assert floor(0) == math.inf
    assert not qualifies(1e12, floor(0))


def test_everybody_qualifies_when_supply_exceeds_the_eligible_population() -> None:
    small = ValueDistribution.from_values(np.array([5.0, 7.0, 9.0]))
    assert floor(10, supply=10, distribution=small) == 0.0
    assert floor(1, supply=1, distribution=ValueDistribution.from_values(np.array([]))) == 0.0


@pytest.mark.parametrize(("remaining", "reach", "elapsed", "expected"), [
    (10, 1.0, 0.0, 91.0),   # the top 10 of 100, all of whom will ask
    (10, 0.5, 0.0, 81.0),   # half of them ask: look 20 deep
    (10, 0.5, 0.5, 61.0),   # half the window gone: 25 still to ask, look 40 deep
    (10, 0.5, None, 81.0),  # no end to the window: the whole reach still to come
    (10, 0.5, 1.0, 0.0),    # the window is over: whoever asks takes what is left
    (5, 0.4, 0.0, 88.0),    # 5 / 0.4 = 12.5 rounds up to 13 customers
    (7, 0.4, 0.3, 76.0),    # 7 / (0.4 * 0.7) is 25.000000000000004 in floating point: still 25
])
def test_known_floors(remaining: int, reach: float, elapsed: float | None,
                      expected: float) -> None:
    assert floor(remaining, reach=reach, elapsed=elapsed) == expected


def test_floor_rises_as_stock_runs_down() -> None:
    floors = [floor(remaining, reach=0.5, elapsed=0.2) for remaining in range(100, -1, -1)]
    assert floors == sorted(floors)
    assert floors[0] < floors[-2] < floors[-1] == math.inf


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"remaining": -1}, "remaining"), ({"remaining": 11}, "remaining"),
    ({"supply": 0, "remaining": 0}, "supply"), ({"reach": 0.0}, "reach"),
    ({"reach": 1.5}, "reach"), ({"elapsed": -0.1}, "elapsed"), ({"elapsed": 1.1}, "elapsed"),
    ({"elapsed": math.nan}, "elapsed"), ({"reach": math.nan}, "reach"),
])
def test_invalid_arguments_are_rejected(kwargs: dict, match: str) -> None:
    arguments = {"remaining": 5, "supply": 10, "distribution": HUNDRED, "reach": 0.5,
                 "elapsed": 0.0} | kwargs
    with pytest.raises(ValueError, match=match):
        value_floor(**arguments)


@given(values=values_lists, supply=st.integers(1, 300), reach=reaches, elapsed=shares,
       data=st.data())
def test_floor_never_falls_as_remaining_falls(values: list[float], supply: int, reach: float,
                                              elapsed: float, data: st.DataObject) -> None:
    distribution = ValueDistribution.from_values(np.array(values))
    more = data.draw(st.integers(0, supply))
    fewer = data.draw(st.integers(0, more))
    assert floor(fewer, supply=supply, distribution=distribution, reach=reach,
                 elapsed=elapsed) >= floor(more, supply=supply, distribution=distribution,
                                           reach=reach, elapsed=elapsed)


@given(values=values_lists, remaining=st.integers(0, 300), reach=reaches, early=shares,
       data=st.data())
def test_floor_never_rises_as_the_window_runs_out(values: list[float], remaining: int,
                                                  reach: float, early: float,
                                                  data: st.DataObject) -> None:
    distribution = ValueDistribution.from_values(np.array(values))
    late = data.draw(st.floats(early, 1.0))
    kwargs: dict[str, Any] = {"remaining": remaining, "supply": 300,
                              "distribution": distribution, "reach": reach}
    assert value_floor(elapsed=late, **kwargs) <= value_floor(elapsed=early, **kwargs)
    assert value_floor(elapsed=None, **kwargs) == value_floor(elapsed=0.0, **kwargs)


@given(values=values_lists, remaining=st.integers(1, 300), reach=reaches, elapsed=shares)
def test_floor_is_zero_or_an_eligible_value_and_lets_enough_customers_in(
        values: list[float], remaining: int, reach: float, elapsed: float) -> None:
    distribution = ValueDistribution.from_values(np.array(values))
    result = floor(remaining, supply=300, distribution=distribution, reach=reach,
                   elapsed=elapsed)
    assert result == 0.0 or result in distribution.values
    # enough customers at or above the floor to expect `remaining` of them to ask
    expected_askers = distribution.count_at_least(result) * reach * (1 - elapsed)
    assert result == 0.0 or expected_askers >= remaining * (1 - 1e-9)


def test_a_value_at_the_floor_qualifies() -> None:
    assert qualifies(50.0, 50.0)
    assert not qualifies(49.99, 50.0)


def test_window_elapsed() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = start + timedelta(days=10)
    assert window_elapsed(start + timedelta(days=4), start, end) == pytest.approx(0.4)
    assert window_elapsed(start - timedelta(days=1), start, end) == 0.0
    assert window_elapsed(end + timedelta(days=1), start, end) == 1.0
    assert window_elapsed(start, start, None) is None
    assert window_elapsed(start, None, end) is None


def simulate(seed: int, *, customers: int = 5_000, reach: float = 0.4,
             supply: int = 50) -> tuple[float, float, int]:
    """(first-come-first-served total value, value-floor total value, value-floor units)."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(np.log(100.0), 0.8, customers)
    distribution = ValueDistribution.from_values(values)
    askers = values[rng.permutation(customers)[: round(reach * customers)]]
    remaining, total = supply, 0.0
    for i, value in enumerate(askers):
        current = value_floor(remaining=remaining, supply=supply, distribution=distribution,
                              reach=reach, elapsed=i / len(askers))
        if qualifies(value, current):
            total += value
            remaining -= 1
    return float(askers[:supply].sum()), total, supply - remaining


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_floor_beats_first_come_first_served_and_sells_the_units(seed: int) -> None:
    first_come, floored, units = simulate(seed)
    assert floored > 2 * first_come
    assert units >= 45


def test_demand_arrived_bends_the_window_share_by_the_arrival_shape() -> None:
    assert demand_arrived(0.4) == pytest.approx(0.4)  # steady demand: the window share itself
    assert demand_arrived(0.0625, 0.25) == pytest.approx(0.5)  # front-loaded: half came early
    assert demand_arrived(0.5, 2.0) == pytest.approx(0.25)  # late demand
    assert demand_arrived(None, 0.25) is None
    with pytest.raises(ValueError, match="arrival_shape"):
        demand_arrived(0.5, 0.0)


def front_loaded(seed: int, shape: float | None, *, customers: int = 5_000, reach: float = 0.4,
                 supply: int = 50) -> tuple[float, int]:
    """(total value, units given) when askers arrive at Beta(0.25, 1) times of the window and
    the floor reads the wall clock (shape None) or is told the arrival shape."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(np.log(100.0), 0.8, customers)
    distribution = ValueDistribution.from_values(values)
    askers = values[rng.permutation(customers)[: round(reach * customers)]]
    times = np.sort(rng.beta(0.25, 1.0, len(askers)))
    remaining, total = supply, 0.0
    for value, t in zip(askers.tolist(), times.tolist(), strict=True):
        elapsed = t if shape is None else demand_arrived(t, shape)
        if qualifies(value, value_floor(remaining=remaining, supply=supply,
                                        distribution=distribution, reach=reach,
                                        elapsed=elapsed)):
            total += value
            remaining -= 1
            if remaining == 0:
                break
    return total, supply - remaining


def test_a_floor_told_the_arrival_shape_sells_a_front_loaded_launch() -> None:
    wall_clock = np.array([front_loaded(seed, None) for seed in range(10)])
    shaped = np.array([front_loaded(seed, 0.25) for seed in range(10)])
    assert (shaped[:, 1] == 50).all()  # every unit sold in every stream
    assert (wall_clock[:, 1] < 50).sum() >= 7  # the wall clock mostly leaves units unsold
    assert shaped[:, 0].sum() > 1.05 * wall_clock[:, 0].sum()


def test_a_weighted_sample_stands_for_the_whole_population() -> None:
    values = np.arange(1.0, 100_001.0)
    whole = ValueDistribution.from_values(values)
    sample = ValueDistribution.from_values(values[::50], weight=50)  # every 50th customer

    assert len(sample) == len(whole)
    for k in (1, 10, 500, 20_000, 99_000):
        assert abs(sample.top_k_value(k) - whole.top_k_value(k)) <= 50, k
    assert abs(sample.count_at_least(70_000.0) - whole.count_at_least(70_000.0)) <= 50
