"""The review queue and notes: a shopper reports a problem, support clears a flag (G7).

An order may carry several open flags, one per reason; clearing one leaves the others.

Each change is a timeline entry naming its cause and, for support, the user by name.
"""

from __future__ import annotations

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason, may_take_report
from orderguard.domain.order import Order
from orderguard.services.clock import Clock, system_clock
from orderguard.services.settling import mutate
from orderguard.storage.ports import UnitOfWorkFactory

#: Longest text a person may write on an order's timeline.
MAX_TEXT = 1000


class Review:
    """Flags, flag clearing and notes written by people."""

    def __init__(self, storage: UnitOfWorkFactory, *, clock: Clock = system_clock) -> None:
        self._storage = storage
        self._clock = clock

    async def report_problem(self, order_id: str, message: str) -> bool:
        """The shopper says something is wrong: flag the order with their words.

        ``False``, changing nothing, while support still has an open report on the order or
        within an hour of the last one (``may_take_report``); other reasons are never touched.
        """

        def report(order: Order) -> bool:
            now = self._clock()
            if not may_take_report(order.flags, now=now):
                return False
            order.flag(FlagReason.SHOPPER_REPORT, _clean(message), cause=Cause.SHOPPER, at=now)
            return True

        return (await mutate(self._storage, order_id, report)).saved

    async def clear_flag(
        self, order_id: str, comment: str, *, actor: str, reason: FlagReason | None = None
    ) -> Order:
        """Support clears one open reason (or, with no ``reason``, every open one), saying why."""

        def clear(order: Order) -> bool:
            now, why = self._clock(), _clean(comment)
            chosen = [reason] if reason else [f.reason for f in order.open_flags]
            return any([order.clear_flag(r, why, actor=actor, at=now) for r in chosen])

        return (await mutate(self._storage, order_id, clear)).order

    async def note(self, order_id: str, text: str, *, actor: str) -> Order:
        """A support user's note on the timeline (e.g. that they asked for a recheck)."""

        def note(order: Order) -> None:
            order.note(_clean(text), cause=Cause.SUPPORT, at=self._clock(), actor=actor)

        return (await mutate(self._storage, order_id, note)).order


def _clean(text: str) -> str:
    """One line of at most :data:`MAX_TEXT` characters, without control characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:MAX_TEXT]
