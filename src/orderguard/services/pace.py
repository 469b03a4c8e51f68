"""At most one go per key per interval: how often a stranger may make the shop call out.

The shopper's page needs only the order's link; whoever holds it can post its forms as
fast as a script allows. Where a form makes the provider work (paying again), a
:class:`Pace` lets one go through per order per interval; the keys remembered are
bounded, oldest forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from orderguard.services.clock import Clock, system_clock

#: Shortest time between two provider calls one order's shopper may cause.
SHOPPER_INTERVAL = timedelta(seconds=5)
#: Keys remembered at once; beyond this the oldest is forgotten.
PACE_CAPACITY = 10_000


class Pace:
    """Says whether ``key`` may go now: once per interval."""

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        interval: timedelta = SHOPPER_INTERVAL,
        capacity: int = PACE_CAPACITY,
    ) -> None:
        self._clock, self._interval, self._capacity = clock, interval, capacity
        self._last: OrderedDict[str, datetime] = OrderedDict()

    def go(self, key: str) -> bool:
        """True (and the interval starts again) unless ``key`` went less than an interval ago."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._capacity or now - next(iter(self._last.values())) >= (
            self._interval
        ):
            self._last.popitem(last=False)
        return True
