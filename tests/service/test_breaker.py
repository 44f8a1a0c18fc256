"""The circuit breaker: open after N failures in a row, one probe when half-open."""

from __future__ import annotations

from service.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_then_lets_one_probe_through_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, seconds=2.0, clock=clock)
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 2.0
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.allow()


def test_a_failed_probe_reopens_and_a_lost_probe_is_replaced():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, seconds=2.0, clock=clock)
    breaker.failed()
    clock.now = 2.0
    assert breaker.allow() and breaker.failed()  # the probe failed: open again
    assert not breaker.allow()
    clock.now = 4.0
    assert breaker.allow()  # a probe that never reports ...
    clock.now = 6.0
    assert breaker.allow()  # ... is given up after `seconds`
    assert CircuitBreaker(failures=5).failed() is False  # below the threshold: still closed
