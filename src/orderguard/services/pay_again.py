"""``POST /v1/orders/{id}/payments``: a declined shopper pays again with another method."""

from __future__ import annotations

from datetime import timedelta

from orderguard.domain.errors import OrderNotFound, PaymentNotAllowed, ProviderUnreachable
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import OrderState
from orderguard.services.clock import Clock, system_clock
from orderguard.services.idempotency import Answer, KeyedRequest, Renderer, Replays
from orderguard.services.intake import LOCK_MARGIN, charge, charging_slots, check_chargeable
from orderguard.services.payments import Payments
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory


def may_pay_again(order: Order) -> bool:
    """After a definite failure, or while waiting for a first attempt that never went out."""
    if order.state is OrderState.PAYMENT_FAILED:
        return True
    return order.state is OrderState.RECEIVED and not order.attempts


class PayAgain:
    """Creates a new payment attempt for an existing order, once per idempotency key."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        render: Renderer,
        payments: Payments,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._render = render
        self._payments = payments
        self._clock = clock
        self._replays = Replays(storage, render, clock)

    async def pay(
        self, order_id: str, method: str, request: KeyedRequest, *, actor: str | None = None
    ) -> Answer:
        """Charge ``order_id`` with ``method`` (``actor``, who asked, named on what changes);
        raises ``PaymentNotAllowed`` when it may not, and ``ProviderUnreachable`` (nothing
        stored, the key left free) when a failed order's payment finds every provider's
        circuit open."""
        self._payments.providers.check_method(method)  # refused before anything is stored
        now = self._clock()
        lock = timedelta(seconds=self._payments.settings.time_budget_s) + LOCK_MARGIN
        async with self._storage() as uow:
            existing = await uow.idempotency.claim(
                request.record(now, order_id, body=None, lock=lock)
            )
            if existing is None:
                order, attempt, body = await self._start(uow, order_id, method, request, actor)
                await uow.commit()
        if existing is not None:
            return await self._replays.answer(existing, request)
        if attempt is None or body is not None:
            return Answer(order.id, 201, body or b"", replayed=False)
        return await charge(
            self._storage,
            self._payments,
            self._render,
            order,
            attempt,
            request,
            self._clock,
            actor=actor,
        )

    async def _start(
        self,
        uow: UnitOfWork,
        order_id: str,
        method: str,
        request: KeyedRequest,
        actor: str | None,
    ) -> tuple[Order, PaymentAttempt | None, bytes | None]:
        """Create the attempt (or leave the order waiting, answered at once)."""
        order = await uow.orders.get(order_id, for_update=True)
        if order is None:
            raise OrderNotFound(order_id)
        if not may_pay_again(order):
            raise PaymentNotAllowed(order_id, order.state)
        # the method's providers must be able to charge the order (it may have been taken
        # without a method, or paid first with another provider's)
        providers = self._payments.providers
        check_chargeable(charging_slots(providers, method, order.total), order.total)
        retried = order.state is OrderState.PAYMENT_FAILED
        attempt = self._payments.prepare(order, method, cause=Cause.API, at=self._clock())
        if attempt is None and retried:
            # Every provider's circuit is open. A failed order cannot wait in ``received``
            # (states only move forward), and a method kept to be charged later would be
            # charged behind the shopper's back, after they were answered "failed". So
            # nothing is kept (the unit of work is left uncommitted, the key with it): the
            # shopper is told to try again later, with the same key.
            slot = self._payments.providers.first_for(method)
            raise ProviderUnreachable(slot.name if slot else method, "every circuit is open")
        if actor is not None:
            order.attribute_to(actor)
        await uow.orders.save(order)
        if attempt is not None:
            return order, attempt, None
        body = self._render(order)
        await request.complete(uow, order.id, body)
        return order, None, body
