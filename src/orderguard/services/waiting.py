"""Orders that wait in ``received`` because no provider was available when they came in.

They are charged as soon as a provider's circuit lets a call through again. The oldest goes
first and alone: while every circuit is open it is the only order looked at, and when a
circuit is half open it is the trial call whose success closes it. Then the rest drain,
batch after batch until none is left waiting, at the provider's pace instead of one batch
per worker round: ``concurrency`` calls at the provider at once, while the next orders are
prepared and the answered ones settled. Safe to run from several processes: each order's
row is locked and re-checked, and its attempt committed, before it is sent.
"""

from __future__ import annotations

import asyncio

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome
from orderguard.domain.states import OrderState
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments
from orderguard.storage.ports import UnitOfWorkFactory

#: Waiting orders read from the database at a time.
BATCH = 100
#: Charge calls one worker has at the provider at once, by default.
CONCURRENCY = 8


async def charge_waiting(
    storage: UnitOfWorkFactory,
    payments: Payments,
    *,
    clock: Clock = system_clock,
    limit: int = BATCH,
    concurrency: int = CONCURRENCY,
    stop: asyncio.Event | None = None,
) -> int:
    """Charge waiting orders until none is left, no provider takes a call, or ``stop`` is
    set; read ``limit`` at a time; return how many were sent."""
    waiting = await _waiting(storage, limit)
    if not waiting or not await _charge(storage, payments, waiting[0], clock):
        return 0  # nothing waits, no provider is up, or another worker took the oldest
    sent, batch = 1, waiting[1:]
    while batch and not (stop is not None and stop.is_set()):
        charged = await _charge_all(storage, payments, batch, clock, concurrency)
        if charged == 0:
            break  # every circuit opened again, or other workers charge these orders
        sent += charged
        batch = await _waiting(storage, limit)
    return sent


async def _waiting(storage: UnitOfWorkFactory, limit: int) -> list[str]:
    async with storage() as uow:
        return await uow.orders.waiting_for_payment(limit)


async def _charge_all(
    storage: UnitOfWorkFactory,
    payments: Payments,
    order_ids: list[str],
    clock: Clock,
    concurrency: int,
) -> int:
    """Charge ``order_ids`` with at most ``concurrency`` calls at the provider at once;
    return how many were sent.

    The database work before and after each call (lock, re-check and commit the attempt;
    settle its answer) happens outside the provider's slots, so the provider is kept busy
    while the next orders are prepared and the answered ones settled.
    """
    ahead, calling = asyncio.Semaphore(concurrency), asyncio.Semaphore(concurrency)

    async def one(order_id: str) -> bool:
        async with ahead:  # orders prepared and not yet at the provider stay few
            started = await _start(storage, payments, order_id, clock)
            if started is None:
                return False
            await calling.acquire()
        try:
            outcome = await payments.send(*started)
        finally:
            calling.release()
        await _settle(storage, payments, started[1], outcome, clock)
        return True

    return sum(await asyncio.gather(*(one(order_id) for order_id in order_ids)))


async def _charge(
    storage: UnitOfWorkFactory, payments: Payments, order_id: str, clock: Clock
) -> bool:
    """Charge one waiting order; ``False`` if it no longer waits or no provider is up."""
    started = await _start(storage, payments, order_id, clock)
    if started is None:
        return False
    outcome = await payments.send(*started)
    await _settle(storage, payments, started[1], outcome, clock)
    return True


async def _start(
    storage: UnitOfWorkFactory, payments: Payments, order_id: str, clock: Clock
) -> tuple[Order, PaymentAttempt] | None:
    """Lock the order, check it still waits, and commit its attempt at an available
    provider; ``None`` if it no longer waits or no provider is up (nothing is saved)."""
    async with storage() as uow:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None or order.state is not OrderState.RECEIVED or not order.payment_method:
            return None
        attempt = payments.prepare(order, order.payment_method, cause=Cause.JANITOR, at=clock())
        if attempt is None:
            return None  # still no provider: it keeps waiting
        await uow.orders.save(order)
        await uow.commit()
    return order, attempt


async def _settle(
    storage: UnitOfWorkFactory,
    payments: Payments,
    attempt: PaymentAttempt,
    outcome: Outcome,
    clock: Clock,
) -> None:
    """Apply the provider's answer to the attempt, on the order as it is now."""
    async with storage() as uow:
        current = await uow.orders.get(attempt.order_id, for_update=True)
        assert current is not None  # orders are never deleted
        payments.settle(current, attempt.id, outcome, cause=Cause.JANITOR, at=clock())
        await uow.orders.save(current)
        await uow.commit()
