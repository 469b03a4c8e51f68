"""The review queue and notes: a shopper reports a problem, support clears a flag (G7).

Each change is a timeline entry naming its cause and, for support, the user by name.
"""

from __future__ import annotations

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory

#: Longest text a person may write on an order's timeline.
MAX_TEXT = 1000


class Review:
    """Flags, flag clearing and notes written by people."""

    def __init__(self, storage: UnitOfWorkFactory, *, clock: Clock = system_clock) -> None:
        self._storage = storage
        self._clock = clock

    async def report_problem(self, order_id: str, message: str) -> Order:
        """The shopper says something is wrong: flag the order with their words."""
        reason = f"shopper reported a problem: {_clean(message)}"
        async with self._storage() as uow:
            order = await _locked(uow, order_id)
            order.flag(reason, cause=Cause.SHOPPER, at=self._clock())
            await uow.orders.save(order)
            await uow.commit()
        return order

    async def clear_flag(self, order_id: str, comment: str, *, actor: str) -> Order:
        """Support takes the order out of the review queue, saying why."""
        async with self._storage() as uow:
            order = await _locked(uow, order_id)
            if order.flag_reason is not None:
                order.clear_flag(_clean(comment), actor=actor, at=self._clock())
                await uow.orders.save(order)
                await uow.commit()
        return order

    async def note(self, order_id: str, text: str, *, actor: str) -> Order:
        """A support user's note on the timeline (e.g. that they asked for a recheck)."""
        async with self._storage() as uow:
            order = await _locked(uow, order_id)
            order.note(_clean(text), cause=Cause.SUPPORT, at=self._clock(), actor=actor)
            await uow.orders.save(order)
            await uow.commit()
        return order


async def _locked(uow: UnitOfWork, order_id: str) -> Order:
    order = await uow.orders.get(order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    return order


def _clean(text: str) -> str:
    """One line of at most :data:`MAX_TEXT` characters, without control characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:MAX_TEXT]
