"""The console's views on the outbox and on recorded reconciliation exceptions, plugged
into the app by :func:`install`."""

from __future__ import annotations

from fastapi import FastAPI

from orderguard.domain.delivery import Delivery, DeliveryState
from orderguard.reconcile import queries as reconciled
from orderguard.reconcile.report import money
from orderguard.services.outbox import OutboxSupport, outbox_health
from orderguard.storage.ports import ExceptionRecord, UnitOfWorkFactory
from orderguard.web.console.ports import ConsoleViews, DeadLetter, ReconciliationException, plug


class OutboxNotifications:
    """:class:`~orderguard.web.console.ports.Notifications` on the outbox's deliveries, read
    through the unit of work (``uow.outbox``, ``uow.endpoints``) on any storage."""

    def __init__(self, container: ConsoleViews) -> None:
        self._storage = container.storage
        self._support = OutboxSupport(container.storage, clock=container.clock)
        self._settings, self._clock = container.settings, container.clock

    async def backlog(self) -> dict[str, int]:
        health = await outbox_health(self._settings, self._storage, now=self._clock())
        return {h.sink: h.undelivered for h in health}

    async def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        return [_letter(d) for d in await self._support.dead_letters(limit=limit)]

    async def resend(self, dead_letter_id: str) -> DeadLetter:
        try:
            found = await self._support.delivery(int(dead_letter_id))
        except ValueError:
            found = None
        if found is None or found.state is not DeliveryState.DEAD:
            raise LookupError(dead_letter_id)
        await self._support.replay_event(found.event.id, sink=found.sink)
        return _letter(found)

    async def deliveries_of(self, order_id: str) -> list[Delivery]:
        return await self._support.deliveries_of_order(order_id)


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


class RecordedReconciliation:
    """:class:`~orderguard.web.console.ports.Reconciliation` on the exceptions that
    ``orderguard reconcile --apply`` recorded (``uow.reconciliations``, on any storage)."""

    def __init__(self, storage: UnitOfWorkFactory) -> None:
        self._storage = storage

    async def exceptions(self, *, limit: int) -> list[ReconciliationException]:
        found = await reconciled.latest_exceptions(self._storage, limit=limit)
        providers = await reconciled.run_providers(self._storage, {x.run_id for x in found})
        return [_exception(x, providers.get(x.run_id, "")) for x in found]


def _exception(record: ExceptionRecord, provider: str) -> ReconciliationException:
    """A recorded exception as the console lists it: the report's amount (the order's when
    the report has none) and, as detail, where in which file and what the order says."""
    reported = record.amount is not None
    amount = record.amount if reported else record.expected_amount
    currency = record.currency if reported else record.expected_currency
    where = f"{record.file}:{record.line}" if record.file else ""
    expected = ""
    if reported and record.expected_amount is not None:
        expected = "order " + money(record.expected_amount, record.expected_currency)
    return ReconciliationException(
        id=record.id,
        provider=provider,
        kind=record.category,
        provider_ref=record.provider_ref or "",
        amount=amount,
        currency=currency,
        detail=" · ".join(part for part in (where, expected) if part),
        found_at=record.recorded_at,
        order_id=record.order_id,
    )


def notifications(container: ConsoleViews) -> OutboxNotifications:
    """The outbox view on the container's storage (SQL or in-memory)."""
    return OutboxNotifications(container)


def reconciliation(container: ConsoleViews) -> RecordedReconciliation:
    """The reconciliation view on the container's storage (SQL or in-memory)."""
    return RecordedReconciliation(container.storage)


def install(app: FastAPI) -> None:
    """Plug the outbox and recorded reconciliation into the console."""
    plug(app, notifications=notifications, reconciliation=reconciliation)
