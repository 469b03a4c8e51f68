"""The refund check's claim, the same on the in-memory fake, SQLite and PostgreSQL: only
orders holding a refund whose lookup is due, each leased to one worker at a time, the
lookup's schedule stored with the refund."""

from __future__ import annotations

from datetime import timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.refund import request_refund
from orderguard.storage.ports import UnitOfWorkFactory
from tests.integration.test_refund_storage import T0, paid_order

WAIT = timedelta(minutes=5)
LEASE = timedelta(seconds=60)


async def with_pending_refund(storage: UnitOfWorkFactory) -> Order:
    order = await paid_order(storage)
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        request_refund(
            loaded,
            amount=500,
            reason="one item",
            requester="key_1",
            request_key="api:key_1:r1",
            cause=Cause.API,
            at=T0,
        )
        await uow.orders.save(loaded)
        await uow.commit()
    return loaded


async def claim(storage: UnitOfWorkFactory, owner: str, *, at: timedelta) -> list[str]:
    now = T0 + at
    async with storage() as uow:
        claimed = await uow.leases.claim_refund_checks(
            now=now, first_due_before=now - WAIT, owner=owner, until=now + LEASE, limit=10
        )
        await uow.commit()
    return claimed


async def test_a_refund_is_due_only_after_the_first_wait_and_leased_to_one_worker(
    storage: UnitOfWorkFactory,
) -> None:
    order = await with_pending_refund(storage)
    assert await claim(storage, "w1", at=WAIT - timedelta(seconds=1)) == []
    assert await claim(storage, "w1", at=WAIT) == [order.id]
    assert await claim(storage, "w2", at=WAIT) == []  # w1 holds it
    assert await claim(storage, "w2", at=WAIT + LEASE + timedelta(seconds=1)) == [order.id]


async def test_a_released_order_waits_for_its_refunds_next_lookup(
    storage: UnitOfWorkFactory,
) -> None:
    order = await with_pending_refund(storage)
    assert await claim(storage, "w1", at=WAIT) == [order.id]
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        loaded.refunds[0].looked_up(T0 + WAIT, next_at=T0 + 3 * WAIT)
        await uow.orders.save(loaded)
        await uow.leases.release(order.id, "w1")
        await uow.commit()
    assert await claim(storage, "w2", at=2 * WAIT) == []  # next lookup not due yet
    assert await claim(storage, "w2", at=3 * WAIT) == [order.id]
    async with storage() as uow:
        stored = await uow.orders.get(order.id)
    assert stored is not None
    [refund] = stored.refunds
    assert (refund.checks, refund.next_check_at) == (1, T0 + 3 * WAIT)


async def test_an_order_whose_refunds_ended_is_never_claimed(storage: UnitOfWorkFactory) -> None:
    await paid_order(storage)  # paid, nothing refunded
    assert await claim(storage, "w1", at=timedelta(days=30)) == []
