"""Refunds stored with their order, the same on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import request_refund, settle_refund
from orderguard.domain.refund_record import RefundState
from orderguard.domain.states import AttemptState, OrderState
from orderguard.storage.ports import UnitOfWorkFactory
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def paid_order(storage: UnitOfWorkFactory) -> Order:
    order = new_order(at=T0)
    order.attempts.append(
        PaymentAttempt(
            id=f"pay_{order.id}",
            order_id=order.id,
            seq=1,
            provider="sandbox",
            method="pm_card_visa",
            amount=order.total.amount,
            currency=order.currency,
            idempotency_key="k",
            created_at=T0,
            updated_at=T0,
            state=AttemptState.SUCCEEDED,
            provider_ref="pi_1",
        )
    )
    order.state = OrderState.PAID
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    return order


async def test_a_refund_is_stored_with_its_order_and_changes_with_it(
    storage: UnitOfWorkFactory,
) -> None:
    order = await paid_order(storage)
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        refund = request_refund(
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
    async with storage() as uow:
        pending = await uow.orders.get(order.id, for_update=True)
        assert pending is not None
        [stored] = pending.refunds
        assert stored == refund
        assert (stored.state, stored.amount, stored.reason) == (
            RefundState.PENDING,
            500,
            "one item",
        )
        assert stored.provider_key == f"orderguard-refund-{stored.id}"
        assert await uow.orders.pending_refunds(updated_before=T0, limit=10) == [order.id]
        assert await uow.orders.pending_refunds(updated_before=T0 - timedelta(1), limit=10) == []
        later = T0 + timedelta(seconds=5)
        settle_refund(
            pending,
            stored,
            RefundState.SUCCEEDED,
            provider_ref="re_1",
            failure_reason=None,
            cause=Cause.API,
            at=later,
        )
        await uow.orders.save(pending)
        await uow.commit()
    async with storage() as uow:
        final = await uow.orders.get(order.id)
        assert await uow.orders.pending_refunds(updated_before=later, limit=10) == []
    assert final is not None
    [done] = final.refunds
    assert (done.state, done.provider_ref, done.updated_at) == (
        RefundState.SUCCEEDED,
        "re_1",
        later,
    )
    assert (final.amount_refunded, final.amount_refundable) == (500, order.total.amount - 500)
    assert final.partially_refunded


async def test_a_repeated_request_key_reads_back_the_same_refund(
    storage: UnitOfWorkFactory,
) -> None:
    order = await paid_order(storage)
    ids = []
    for _ in range(2):
        async with storage() as uow:
            loaded = await uow.orders.get(order.id, for_update=True)
            assert loaded is not None
            made = request_refund(
                loaded,
                amount=300,
                reason="r",
                requester="key_1",
                request_key="api:key_1:same",
                cause=Cause.API,
                at=T0,
            )
            ids.append(made.id)
            await uow.orders.save(loaded)
            await uow.commit()
    async with storage() as uow:
        final = await uow.orders.get(order.id)
    assert final is not None
    assert ids[0] == ids[1] and [r.id for r in final.refunds] == [ids[0]]
