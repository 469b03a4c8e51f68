"""The shopper back from authentication: one provider question per attempt per interval.

``GET /orders/{id}/return`` needs nothing but the order's link, so whoever holds it can
hit it as often as they like; each hit used to ask the provider, spending the shop's rate
limit. Here the question for an order's open attempts is asked at most once per
``interval``: hits while it is under way wait for that same answer (single flight), hits
shortly after reuse it. A new attempt (the shopper paid again) is a new question. The
answers kept are bounded, oldest forgotten first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.services.clock import Clock, system_clock
from orderguard.services.pace import SHOPPER_INTERVAL
from orderguard.services.recheck import Recheck

#: How long an answer of the provider is reused for the same open attempts.
RETURN_INTERVAL = SHOPPER_INTERVAL
#: Questions remembered at once; beyond this the oldest is forgotten (it may be asked again).
RETURN_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class _Question:
    """One question to the provider about an order's open attempts, and when it was asked."""

    asked_at: datetime
    answer: asyncio.Task[Order]

    def stale(self, now: datetime, interval: timedelta) -> bool:
        """Answered, and longer ago than ``interval`` (one still under way is never stale)."""
        return self.answer.done() and now - self.asked_at >= interval


def question_key(order: Order) -> tuple[str, ...]:
    """What is asked: the order and its attempts not yet final (none: nothing to ask)."""
    return (order.id, *(a.id for a in order.attempts if not a.state.is_terminal))


class ShopperReturn:
    """Rechecks an order for the shopper, never more than once per attempt per interval."""

    def __init__(
        self,
        recheck: Recheck,
        *,
        clock: Clock = system_clock,
        interval: timedelta = RETURN_INTERVAL,
        capacity: int = RETURN_CAPACITY,
    ) -> None:
        self._recheck, self._clock = recheck, clock
        self._interval, self._capacity = interval, capacity
        self._asked: OrderedDict[tuple[str, ...], _Question] = OrderedDict()

    async def order(self, order: Order) -> Order:
        """``order`` brought up to date with the provider, or the recent answer about it."""
        key = question_key(order)
        if len(key) == 1:
            return order  # every attempt is final: the provider has nothing new to say
        question = self._recent(key) or self._ask(key, order.id)
        return await asyncio.shield(question.answer)

    def _recent(self, key: tuple[str, ...]) -> _Question | None:
        question = self._asked.get(key)
        if question is None or question.stale(self._clock(), self._interval):
            return None
        return question

    def _ask(self, key: tuple[str, ...], order_id: str) -> _Question:
        answer = asyncio.create_task(self._recheck.order(order_id, cause=Cause.SHOPPER))
        answer.add_done_callback(_retrieve)
        question = _Question(self._clock(), answer)
        self._asked[key] = question
        self._asked.move_to_end(key)
        self._forget_old(now=question.asked_at)
        return question

    def _forget_old(self, *, now: datetime) -> None:
        """Drop stale questions from the oldest on, and the oldest beyond capacity."""
        while self._asked:
            oldest = next(iter(self._asked.values()))
            if not oldest.stale(now, self._interval) and len(self._asked) <= self._capacity:
                return
            self._asked.popitem(last=False)


def _retrieve(task: asyncio.Task[Order]) -> None:
    """Mark a failed question's error as seen: whoever waited on it got it raised."""
    if not task.cancelled():
        task.exception()
