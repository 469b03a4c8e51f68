"""A circuit breaker: stop calling a provider that keeps failing, probe it after a cool-down."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where a :class:`CircuitBreaker` stands."""

    #: Calls flow; consecutive transport failures are counted.
    CLOSED = "closed"
    #: Calls are refused until the cool-down has passed.
    OPEN = "open"
    #: The cool-down passed: one probe call may go through.
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; ``clock`` gives seconds."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._probe_started = 0.0

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN turns HALF_OPEN by itself once the cool-down passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self.cool_down_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def closed(self) -> bool:
        """Whether calls go out freely (CLOSED): :meth:`allow` would say yes and change
        nothing."""
        return self._opened_at is None

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go out now; in HALF_OPEN only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        now = self._clock()
        if self._probing and now - self._probe_started < self.cool_down_s:
            return False  # a probe is out; one that never reports back expires after cool_down_s
        self._probing, self._probe_started = True, now
        return True

    def record_success(self) -> None:
        """A call succeeded: close."""
        self._failures, self._opened_at, self._probing = 0, None, False

    def record_failure(self) -> None:
        """A call failed at the transport: count it, open at the threshold, re-open a probe."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at, self._probing = self._clock(), False
