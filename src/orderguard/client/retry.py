"""When to send a request again, and after how long: pure policy, shared by the sync and
async clients (which only sleep and send).

A request is sent again only when that cannot do harm: it is *replay-safe* (a GET, or a
POST carrying an Idempotency-Key, which the server answers at most once) and the failure
says nothing about the request itself: no answer at all (connection refused or reset,
timeout), a 5xx, a 429, or 409 request-in-flight (the first try with this key is still
being served). A request that is not replay-safe is sent again only when it never left
(the connection could not be opened). Any other answer, above all a 4xx about the
request's content, is final at once. Waits grow exponentially with full jitter, follow
``Retry-After`` when the server sends one, and never run past the policy's deadline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

#: Statuses worth another try of a replay-safe request.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The one 409 that is about timing, not about the request: the first try is in flight.
IN_FLIGHT = "request-in-flight"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try: at most ``attempts`` sends within ``deadline_s`` seconds of the
    first, waiting ``initial_s`` doubled per try (at most ``max_wait_s``), jittered."""

    attempts: int = 6
    initial_s: float = 0.25
    max_wait_s: float = 5.0
    deadline_s: float = 30.0
    #: Seconds one send may wait for its answer (never past the deadline).
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.deadline_s <= 0 or self.timeout_s <= 0:
            raise ValueError("attempts >= 1, deadline_s > 0 and timeout_s > 0 are required")


#: One send, no retries (for callers that run their own).
NO_RETRIES = RetryPolicy(attempts=1)


def backoff_s(*, tries: int, policy: RetryPolicy, draw: Callable[[], float]) -> float:
    """Seconds to wait after ``tries`` failed sends: full jitter over an exponential
    ceiling (``draw`` returns a number in [0, 1))."""
    ceiling = min(policy.max_wait_s, policy.initial_s * 2.0 ** (tries - 1))
    return ceiling * draw()


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def never_left(exc: httpx.TransportError) -> bool:
    """The request was certainly not received: no connection was opened or free for it."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def lost_on_the_way(exc: httpx.TransportError) -> bool:
    """A fault of the network or the server (worth another try), not of the request
    itself (an unsupported URL scheme, a header httpx cannot send: never worth one)."""
    return isinstance(exc, httpx.NetworkError | httpx.TimeoutException | httpx.RemoteProtocolError)


@dataclass
class RetryPlan:
    """The tries of one request: says, after each, whether and when to send it again."""

    policy: RetryPolicy
    #: A GET, or a POST with an Idempotency-Key.
    replay_safe: bool
    clock: Callable[[], float]
    draw: Callable[[], float] = field(default=random.random)
    tries: int = 0
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def timeout_s(self) -> float:
        """How long the next send may wait for its answer."""
        return max(0.001, min(self.policy.timeout_s, self._left()))

    def sent(self) -> None:
        """Count one send."""
        self.tries += 1

    def after_no_answer(self, exc: httpx.TransportError) -> float | None:
        """Seconds to wait before sending again after ``exc``; None: give up."""
        if not lost_on_the_way(exc) or not (self.replay_safe or never_left(exc)):
            return None
        return self._wait(None)

    def after_answer(self, status: int, slug: str, retry_after: float | None) -> float | None:
        """Seconds to wait before sending again after this answer; None: it is final."""
        if not self.replay_safe:
            return None
        if status in RETRYABLE_STATUSES or (status == 409 and slug == IN_FLIGHT):
            return self._wait(retry_after)
        return None

    def _wait(self, retry_after: float | None) -> float | None:
        if self.tries >= self.policy.attempts:
            return None
        wait = backoff_s(tries=self.tries, policy=self.policy, draw=self.draw)
        if retry_after is not None:  # the server's word, plus jitter so callers spread out
            wait = retry_after + wait / 2
        if wait >= self._left():
            return None
        return wait

    def _left(self) -> float:
        return self.policy.deadline_s - (self.clock() - self.started)
