"""When the janitor asks the provider again about an order, and when it gives up (G5).

Pure policy: given the order's state, how many rechecks were done in that state and when
the last one was, say whether another is due and whether the schedule has run out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orderguard.domain.states import OrderState

_S = timedelta(seconds=1)
_DAY = timedelta(days=1)

#: Default waits before each recheck of an outcome that is not known: 10 s, 30 s, 2 min,
#: 10 min, 1 h, 6 h, then daily for 3 days.
UNKNOWN_WAITS: tuple[timedelta, ...] = (
    10 * _S,
    30 * _S,
    120 * _S,
    600 * _S,
    3600 * _S,
    6 * 3600 * _S,
    _DAY,
    _DAY,
    _DAY,
)
#: Default waits for a payment the provider is still processing.
PENDING_WAITS: tuple[timedelta, ...] = (
    30 * _S,
    120 * _S,
    600 * _S,
    3600 * _S,
    6 * 3600 * _S,
    _DAY,
    _DAY,
    _DAY,
)
#: Default waits for a shopper who has to authenticate (expiry cancels earlier).
ACTION_WAITS: tuple[timedelta, ...] = (120 * _S, 600 * _S, 1800 * _S, 3600 * _S)


@dataclass(frozen=True, slots=True)
class RecheckSchedule:
    """Waits before each recheck, per state; the janitor watches exactly these states."""

    waits: dict[OrderState, tuple[timedelta, ...]] = field(
        default_factory=lambda: {
            OrderState.PAYMENT_UNKNOWN: UNKNOWN_WAITS,
            OrderState.PAYMENT_PENDING: PENDING_WAITS,
            OrderState.ACTION_REQUIRED: ACTION_WAITS,
        }
    )

    @property
    def watched(self) -> frozenset[OrderState]:
        """The states the janitor rechecks."""
        return frozenset(self.waits)

    @property
    def shortest_wait(self) -> timedelta:
        """The shortest wait of any state (bounds the janitor's query)."""
        return min(w[0] for w in self.waits.values() if w)

    def due(self, *, state: OrderState, checks: int, since: datetime, now: datetime) -> bool:
        """Whether the next recheck of an order is due (after the last wait: daily)."""
        waits = self.waits.get(state)
        if not waits:
            return False
        return now >= since + waits[min(checks, len(waits) - 1)]

    def exhausted(self, *, state: OrderState, checks: int) -> bool:
        """Whether every recheck of the schedule was done: time to escalate."""
        return checks >= len(self.waits.get(state, ()))

    def scaled(self, factor: float) -> RecheckSchedule:
        """The same schedule, every wait multiplied by ``factor`` (for demos and tests)."""
        return RecheckSchedule(
            {state: tuple(w * factor for w in waits) for state, waits in self.waits.items()}
        )
