"""The console's views on the outbox (and, once it exists, reconciliation), plugged into
the app by :func:`install`."""

from __future__ import annotations

from fastapi import FastAPI

from orderguard.bootstrap import Container
from orderguard.domain.delivery import Delivery, DeliveryState
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.outbox import OutboxStore
from orderguard.storage.unit_of_work import SqlStorage
from orderguard.web.console.ports import DeadLetter, plug


class OutboxNotifications:
    """:class:`~orderguard.web.console.ports.Notifications` on the outbox tables."""

    def __init__(self, container: Container) -> None:
        storage = container.storage
        if not isinstance(storage, SqlStorage):
            raise LookupError("the outbox lives in SQL storage")
        self._store = OutboxStore(storage.db)
        self._support = OutboxSupport(storage.db, clock=container.clock)

    async def backlog(self) -> int:
        return await self._store.pending_count()

    async def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        return [_letter(d) for d in await self._support.dead_letters(limit=limit)]

    async def resend(self, dead_letter_id: str) -> DeadLetter:
        try:
            found = await self._store.delivery(int(dead_letter_id))
        except ValueError:
            found = None
        if found is None or found.state is not DeliveryState.DEAD:
            raise LookupError(dead_letter_id)
        await self._support.replay_event(found.event.id, sink=found.sink)
        return _letter(found)


def _letter(delivery: Delivery) -> DeadLetter:
    return DeadLetter(
        id=str(delivery.id),
        order_id=delivery.event.order_id,
        event_type=str(delivery.event.type),
        sink=delivery.sink,
        attempts=delivery.attempts,
        last_error=delivery.last_error or "",
        failed_at=delivery.dead_at or delivery.next_attempt_at,
    )


def install(app: FastAPI) -> None:
    """Plug the outbox into the console."""
    plug(app, notifications=OutboxNotifications)
