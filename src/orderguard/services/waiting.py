"""Orders that wait in ``received`` because no provider was available when they came in.

They are charged as soon as a provider's circuit lets a call through again, several at a
time. Safe to run from several processes: the order row is locked and re-checked before
its attempt is made.
"""

from __future__ import annotations

import asyncio

from orderguard.domain.events import Cause
from orderguard.domain.states import OrderState
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments
from orderguard.storage.ports import UnitOfWorkFactory


async def charge_waiting(
    storage: UnitOfWorkFactory,
    payments: Payments,
    *,
    clock: Clock = system_clock,
    limit: int = 100,
    concurrency: int = 8,
) -> int:
    """Start the payment of up to ``limit`` waiting orders; return how many were sent."""
    async with storage() as uow:
        waiting = await uow.orders.waiting_for_payment(limit)
    slots = asyncio.Semaphore(concurrency)

    async def one(order_id: str) -> bool:
        async with slots:
            return await _charge(storage, payments, order_id, clock)

    return sum(await asyncio.gather(*(one(order_id) for order_id in waiting)))


async def _charge(
    storage: UnitOfWorkFactory, payments: Payments, order_id: str, clock: Clock
) -> bool:
    """Charge one waiting order; ``False`` if it no longer waits or no provider is up."""
    async with storage() as uow:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None or order.state is not OrderState.RECEIVED or not order.payment_method:
            return False
        attempt = payments.prepare(order, order.payment_method, cause=Cause.JANITOR, at=clock())
        if attempt is None:
            return False  # still no provider: it keeps waiting (nothing was saved)
        await uow.orders.save(order)
        await uow.commit()
    outcome = await payments.send(order, attempt)
    async with storage() as uow:
        current = await uow.orders.get(order_id, for_update=True)
        assert current is not None  # orders are never deleted
        payments.settle(current, attempt.id, outcome, cause=Cause.JANITOR, at=clock())
        await uow.orders.save(current)
        await uow.commit()
    return True
