"""When a pending refund is looked up at its provider, and when a person is asked (issue 19).

Pure policy, like the janitor's :mod:`.schedule`: given how many lookups were done and
when, say when the next is due and whether the schedule has run out. The default follows
WeChat Pay's advice for its refund query (every minute at first, then less and less
often): a card or wallet refund usually ends within minutes, a bank card's within days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MIN = timedelta(minutes=1)
_DAY = timedelta(days=1)

#: Default waits before each lookup of a pending refund, counted from its creation for the
#: first and from the previous lookup after that: 5 min, 10 min, 30 min, 1 h, 6 h, then
#: daily for 3 days (about 3.3 days in all, inside the 10 days ``retry_refunds`` allows).
REFUND_CHECK_WAITS: tuple[timedelta, ...] = (
    5 * _MIN,
    10 * _MIN,
    30 * _MIN,
    60 * _MIN,
    6 * 60 * _MIN,
    _DAY,
    _DAY,
    _DAY,
)


@dataclass(frozen=True, slots=True)
class RefundCheckSchedule:
    """Waits before each lookup of one pending refund; after the last, daily lookups go on
    (a late answer still settles it) but the refund is escalated once."""

    waits: tuple[timedelta, ...] = REFUND_CHECK_WAITS

    def __post_init__(self) -> None:
        if not self.waits or any(w <= timedelta(0) for w in self.waits):
            raise ValueError("a refund check schedule needs at least one positive wait")

    @property
    def first_wait(self) -> timedelta:
        """How old a pending refund is before it is first looked up."""
        return self.waits[0]

    def next_at(self, *, checks: int, now: datetime) -> datetime:
        """When the lookup after ``checks`` lookups (the last one ``now``) is due."""
        return now + self.waits[min(checks, len(self.waits) - 1)]

    def exhausted(self, *, checks: int) -> bool:
        """Whether every lookup of the schedule was done: time to ask a person."""
        return checks >= len(self.waits)

    def scaled(self, factor: float) -> RefundCheckSchedule:
        """The same schedule, every wait multiplied by ``factor`` (for demos and tests)."""
        return RefundCheckSchedule(tuple(w * factor for w in self.waits))
