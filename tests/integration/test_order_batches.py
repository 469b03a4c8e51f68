"""Orders read, claimed and saved several at a time (what the drain of waiting orders uses),
on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.events import Cause, EventType
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import OrderState
from orderguard.storage.orders import ConcurrentUpdate
from orderguard.storage.ports import UnitOfWorkFactory
from tests.conftest import open_storage
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VISA = "pm_card_visa"


async def _add(storage: UnitOfWorkFactory, *orders: Order) -> None:
    async with storage() as uow:
        for order in orders:
            await uow.orders.add(order)
        await uow.commit()


def _waiting(minutes: int) -> Order:
    order = new_order(at=T0 + timedelta(minutes=minutes))
    order.payment_method = VISA
    return order


def _attempt(order: Order, at: datetime) -> PaymentAttempt:
    return PaymentAttempt(
        id=f"pay_{order.id}",
        order_id=order.id,
        seq=1,
        provider="memory",
        method=VISA,
        amount=order.total.amount,
        currency=order.currency,
        idempotency_key=f"orderguard-pay_{order.id}",
        created_at=at,
        updated_at=at,
    )


async def test_lock_many_reads_the_orders_asked_for_whole_in_the_order_asked(
    storage: UnitOfWorkFactory,
) -> None:
    a, b, c = new_order(at=T0), new_order(at=T0), new_order(at=T0)
    b.attempts.append(_attempt(b, T0))
    b.flag(FlagReason.AMOUNT_MISMATCH, "paid 1 cent less", cause=Cause.RECONCILIATION, at=T0)
    await _add(storage, a, b, c)

    async with storage() as uow:
        many = await uow.orders.lock_many([c.id, "ord_missing", b.id, c.id])
        one_by_one = [await uow.orders.get(c.id), await uow.orders.get(b.id)]

    assert [o.id for o in many] == [c.id, b.id]  # unknown ids and repeats left out
    for got, expected in zip(many, one_by_one, strict=True):
        assert expected is not None
        assert (got.lines, got.customer, got.state, got.version) == (
            expected.lines,
            expected.customer,
            expected.state,
            expected.version,
        )
        assert got.attempts == expected.attempts
        assert got.flags == expected.flags
    assert [len(o.attempts) for o in many] == [0, 1]
    assert [len(o.flags) for o in many] == [0, 1]


async def test_claim_waiting_takes_the_oldest_orders_holding_a_method_up_to_the_limit(
    storage: UnitOfWorkFactory,
) -> None:
    newest, oldest, middle = _waiting(30), _waiting(0), _waiting(10)
    no_method = new_order(at=T0 - timedelta(hours=1))  # older, but nothing to charge it with
    paid = _waiting(-60)
    paid.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
    await _add(storage, newest, oldest, middle, no_method, paid)

    async with storage() as uow:
        two = await uow.orders.claim_waiting(2)
    async with storage() as uow:
        every = await uow.orders.claim_waiting(10)

    assert [o.id for o in two] == [oldest.id, middle.id]
    assert [o.id for o in every] == [oldest.id, middle.id, newest.id]
    assert [o.lines for o in every] == [oldest.lines, middle.lines, newest.lines]
    assert {o.payment_method for o in every} == {VISA}


async def test_save_many_stores_every_order_with_its_attempt_timeline_and_events(
    storage: UnitOfWorkFactory,
) -> None:
    orders = [_waiting(i) for i in range(3)]
    await _add(storage, *orders)
    at = T0 + timedelta(hours=1)

    async with storage() as uow:
        loaded = await uow.orders.lock_many([o.id for o in orders])
        versions = [o.version for o in loaded]
        for order in loaded:
            order.attempts.append(_attempt(order, at))
            order.payment_method = None
            order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.JANITOR, at=at, note="sent")
        loaded[1].move_to(OrderState.PAID, cause=Cause.JANITOR, at=at)
        await uow.orders.save_many(loaded)
        await uow.commit()
    assert [o.version for o in loaded] == [v + 1 for v in versions]  # the next save checks it

    async with storage() as uow:
        stored = [await uow.orders.get(o.id) for o in orders]
        timelines = [await uow.orders.timeline(o.id) for o in orders]
        events = [await uow.orders.events(o.id) for o in orders]
    states = [o.state if o else None for o in stored]
    assert states == [OrderState.PAYMENT_PENDING, OrderState.PAID, OrderState.PAYMENT_PENDING]
    assert [[a.id for a in o.attempts] if o else [] for o in stored] == [
        [f"pay_{o.id}"] for o in orders
    ]
    assert [o.payment_method if o else "?" for o in stored] == [None, None, None]
    assert [[e.to_state for e in t] for t in timelines] == [
        [OrderState.RECEIVED, OrderState.PAYMENT_PENDING],
        [OrderState.RECEIVED, OrderState.PAYMENT_PENDING, OrderState.PAID],
        [OrderState.RECEIVED, OrderState.PAYMENT_PENDING],
    ]
    assert [[e.type for e in evs] for evs in events] == [
        [EventType.RECEIVED],
        [EventType.RECEIVED, EventType.PAID],
        [EventType.RECEIVED],
    ]


async def test_save_many_refuses_the_lot_when_one_order_changed_since_it_was_loaded(
    storage: UnitOfWorkFactory,
) -> None:
    first, second = _waiting(0), _waiting(1)
    await _add(storage, first, second)
    async with storage() as uow:
        stale = await uow.orders.lock_many([first.id, second.id])
    async with storage() as uow:  # someone else moves the second order on
        other = await uow.orders.get(second.id)
        assert other is not None
        other.move_to(OrderState.CANCELLED, cause=Cause.API, at=T0)
        await uow.orders.save(other)
        await uow.commit()

    for order in stale:
        order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.JANITOR, at=T0)
    with pytest.raises(ConcurrentUpdate):
        async with storage() as uow:
            await uow.orders.save_many(stale)
            await uow.commit()

    async with storage() as uow:
        kept = [await uow.orders.get(first.id), await uow.orders.get(second.id)]
        timeline = await uow.orders.timeline(first.id)
    assert [o.state if o else None for o in kept] == [OrderState.RECEIVED, OrderState.CANCELLED]
    assert [e.to_state for e in timeline] == [OrderState.RECEIVED]  # nothing half-saved


async def test_claim_waiting_skips_orders_another_transaction_holds_without_waiting(
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    try:
        held, free = _waiting(0), _waiting(1)
        await _add(storage, held, free)
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with storage() as uow:
                assert [o.id for o in await uow.orders.lock_many([held.id])] == [held.id]
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(holding.wait(), timeout=30)
        try:
            async with storage() as uow:
                # would block until the holder ends if locked rows were waited for
                claimed = await asyncio.wait_for(uow.orders.claim_waiting(10), timeout=30)
        finally:
            release.set()
            await holder
        async with storage() as uow:
            after = await uow.orders.claim_waiting(10)
    finally:
        await storage.close()

    assert [o.id for o in claimed] == [free.id]
    assert [o.id for o in after] == [held.id, free.id]
