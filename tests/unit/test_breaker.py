"""The circuit breaker on a controlled clock: open after N failures, one probe after cool-down."""

from __future__ import annotations

from agent.llm.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker(failures=3, cooldown_s=60, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    return breaker


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=60, clock=Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_opens_after_n_consecutive_failures() -> None:
    breaker = _opened(Clock())
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_half_open_after_cooldown_allows_exactly_one_probe() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 59.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # a second caller waits for the probe's outcome


def test_successful_probe_closes() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 60
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # the count starts again from zero


def test_failed_probe_reopens_for_a_whole_cooldown() -> None:
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 60
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 59
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()
