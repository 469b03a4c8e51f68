"""One storage contract, run unchanged on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.storage.orders import ConcurrentUpdate
from orderguard.storage.ports import ApiKey, IdempotencyRecord, OrderQuery, UnitOfWorkFactory
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_an_added_order_reads_back_whole(storage: UnitOfWorkFactory) -> None:
    order = new_order(reference="A-1", at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        loaded = await uow.orders.get(order.id)
        timeline = await uow.orders.timeline(order.id)
        events = await uow.orders.events(order.id)
    assert loaded is not None
    for field in (
        "id",
        "state",
        "currency",
        "lines",
        "customer",
        "status_token",
        "created_at",
        "merchant_reference",
        "locale",
        "flag_reason",
        "flags",
    ):
        assert getattr(loaded, field) == getattr(order, field), field
    assert loaded.total.amount == 2 * 1999 + 850
    assert [(e.from_state, e.to_state, e.cause) for e in timeline] == [
        (None, OrderState.RECEIVED, Cause.API)
    ]
    assert [(e.type, e.payload["order_id"]) for e in events] == [("order.received", order.id)]


async def test_leaving_without_commit_rolls_everything_back(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
    with pytest.raises(RuntimeError):
        async with storage() as uow:
            await uow.orders.add(new_order(at=T0))
            raise RuntimeError("boom")
    async with storage() as uow:
        assert await uow.orders.get(order.id) is None
        assert await uow.orders.search(OrderQuery(limit=10)) == []


async def test_a_taken_merchant_reference_names_the_order_holding_it(
    storage: UnitOfWorkFactory,
) -> None:
    first = new_order(reference="A-1001", at=T0)
    async with storage() as uow:
        await uow.orders.add(first)
        await uow.commit()
    with pytest.raises(DuplicateMerchantReference) as caught:
        async with storage() as uow:  # raised by add, or by the commit the inserts wait for
            await uow.orders.add(new_order(reference="A-1001", at=T0))
            await uow.commit()
    assert caught.value.merchant_reference == "A-1001"
    async with storage() as uow:
        assert await uow.orders.find_by_reference("A-1001") == first.id
        assert await uow.orders.find_by_reference("nope") is None


async def test_saving_moves_state_stores_attempts_and_appends_history(
    storage: UnitOfWorkFactory,
) -> None:
    order = new_order(at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        loaded.attempts.append(
            PaymentAttempt(
                id="pay_1",
                order_id=order.id,
                seq=1,
                provider="sandbox",
                method="pm_card_visa",
                amount=4848,
                currency="EUR",
                idempotency_key="pay_1",
                created_at=T0,
                updated_at=T0,
            )
        )
        loaded.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
        await uow.orders.save(loaded)
        await uow.commit()
    async with storage() as uow:
        again = await uow.orders.get(order.id)
        assert again is not None
        again.attempts[0].move_to(AttemptState.SUCCEEDED, at=T0 + timedelta(seconds=1))
        again.attempts[0].provider_ref = "pi_123"
        again.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=T0 + timedelta(seconds=1))
        again.flag(FlagReason.AMOUNT_MISMATCH, "", cause=Cause.RECONCILIATION, at=T0)
        await uow.orders.save(again)
        await uow.commit()
    async with storage() as uow:
        final = await uow.orders.get(order.id)
        timeline = await uow.orders.timeline(order.id)
        events = await uow.orders.events(order.id)
    assert final is not None
    assert (final.state, final.flag_reason) == (OrderState.PAID, "amount mismatch")
    assert [(a.state, a.provider_ref) for a in final.attempts] == [
        (AttemptState.SUCCEEDED, "pi_123")
    ]
    assert [e.to_state for e in timeline] == ["received", "payment_pending", "paid", "paid"]
    assert [e.type for e in events] == ["order.received", "order.paid", "order.flagged"]


async def test_a_stale_copy_cannot_overwrite_a_newer_one(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        stale = await uow.orders.get(order.id)
    async with storage() as uow:
        fresh = await uow.orders.get(order.id)
        assert fresh is not None
        fresh.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=T0)
        await uow.orders.save(fresh)
        await uow.commit()
    assert stale is not None
    stale.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
    with pytest.raises(ConcurrentUpdate):
        async with storage() as uow:
            await uow.orders.save(stale)
    async with storage() as uow:
        current = await uow.orders.get(order.id)
    assert current is not None and current.state is OrderState.CANCELLED


async def test_orders_page_newest_first_with_filters_and_a_keyset_cursor(
    storage: UnitOfWorkFactory,
) -> None:
    orders = [new_order(at=T0 + timedelta(minutes=i)) for i in range(7)]
    orders[3].move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=T0)
    async with storage() as uow:
        for order in orders:
            await uow.orders.add(order)
        await uow.commit()
    newest_first = [o.id for o in reversed(orders)]
    seen: list[str] = []
    cursor = None
    async with storage() as uow:
        while True:
            page = await uow.orders.search(OrderQuery(limit=3, cursor=cursor))
            seen += [o.id for o in page]
            if len(page) < 3:
                break
            cursor = (page[-1].created_at, page[-1].id)
        cancelled = await uow.orders.search(OrderQuery(limit=10, state=OrderState.CANCELLED))
        window = await uow.orders.search(
            OrderQuery(
                limit=10,
                created_after=T0 + timedelta(minutes=2),
                created_before=T0 + timedelta(minutes=4),
            )
        )
    assert seen == newest_first
    assert [o.id for o in cancelled] == [orders[3].id]
    assert [o.id for o in window] == [orders[3].id, orders[2].id]
    assert cancelled[0].lines == orders[3].lines


async def test_an_idempotency_key_is_claimed_once_and_completed(
    storage: UnitOfWorkFactory,
) -> None:
    record = IdempotencyRecord(
        scope="local",
        key="k1",
        fingerprint="f1",
        created_at=T0,
        locked_until=T0 + timedelta(seconds=30),
    )
    async with storage() as uow:
        assert await uow.idempotency.claim(record) is None
        await uow.commit()
    async with storage() as uow:
        existing = await uow.idempotency.claim(
            IdempotencyRecord(scope="local", key="k1", fingerprint="f2", created_at=T0)
        )
    assert existing is not None
    assert (existing.fingerprint, existing.response_status) == ("f1", None)
    assert existing.locked_until == T0 + timedelta(seconds=30)
    async with storage() as uow:
        await uow.idempotency.complete("local", "k1", order_id="ord_1", status=201, body=b"{}")
        other_scope = await uow.idempotency.claim(
            IdempotencyRecord(scope="key_2", key="k1", fingerprint="f9", created_at=T0)
        )
        await uow.commit()
    assert other_scope is None
    async with storage() as uow:
        done = await uow.idempotency.claim(record)
    assert done is not None
    assert (done.order_id, done.response_status, done.response_body) == ("ord_1", 201, b"{}")
    assert done.locked_until is None


async def test_a_key_claimed_for_an_order_stores_both_and_a_taken_key_stores_nothing(
    storage: UnitOfWorkFactory,
) -> None:
    order = new_order(reference="A-2001", at=T0)
    order.note('second entry: «quoted» \\ "text"', cause=Cause.API, at=T0, actor="key_1")
    body = '{"id": "' + order.id + '", "note": "Ação \\u00e7 \\"x\\""}'
    record = IdempotencyRecord(
        scope="local",
        key="k-order",
        fingerprint="f1",
        created_at=T0,
        order_id=order.id,
        response_status=201,
        response_body=body.encode(),
    )
    async with storage() as uow:
        assert await uow.idempotency.claim_for(record, order) is None
        await uow.commit()
    other = new_order(reference="A-2002", at=T0)
    async with storage() as uow:
        existing = await uow.idempotency.claim_for(
            IdempotencyRecord(scope="local", key="k-order", fingerprint="f2", created_at=T0),
            other,
        )
        await uow.commit()
    assert existing == record
    async with storage() as uow:
        loaded = await uow.orders.get(order.id)
        timeline = await uow.orders.timeline(order.id)
        events = await uow.orders.events(order.id)
        assert await uow.orders.get(other.id) is None
    assert loaded is not None
    for field in ("lines", "customer", "status_token", "created_at", "merchant_reference"):
        assert getattr(loaded, field) == getattr(order, field), field
    assert [(e.to_state, e.note, e.actor) for e in timeline] == [
        (OrderState.RECEIVED, "order received", None),
        (OrderState.RECEIVED, 'second entry: «quoted» \\ "text"', "key_1"),
    ]
    assert [(e.type, e.payload["order_id"]) for e in events] == [("order.received", order.id)]


async def test_a_key_claimed_for_an_order_holding_a_taken_reference_stays_free(
    storage: UnitOfWorkFactory,
) -> None:
    async with storage() as uow:
        await uow.orders.add(new_order(reference="A-3001", at=T0))
        await uow.commit()
    record = IdempotencyRecord(scope="local", key="k-taken", fingerprint="f1", created_at=T0)
    with pytest.raises(DuplicateMerchantReference):
        async with storage() as uow:
            await uow.idempotency.claim_for(record, new_order(reference="A-3001", at=T0))
            await uow.commit()
    async with storage() as uow:
        assert await uow.idempotency.claim(record) is None  # nobody holds it


async def test_pruning_removes_only_old_idempotency_records(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        for key, age in (("old", 30), ("new", 1)):
            await uow.idempotency.claim(
                IdempotencyRecord(
                    scope="local",
                    key=key,
                    fingerprint="f",
                    created_at=T0 - timedelta(hours=age),
                    order_id=order.id,
                    response_status=201,
                    response_body=b"{}",
                )
            )
        await uow.commit()
    async with storage() as uow:
        assert await uow.idempotency.prune(T0 - timedelta(hours=24)) == 1
        await uow.commit()
    async with storage() as uow:
        assert (
            await uow.idempotency.claim(
                IdempotencyRecord(scope="local", key="old", fingerprint="f", created_at=T0)
            )
            is None
        )
        assert (
            await uow.idempotency.claim(
                IdempotencyRecord(scope="local", key="new", fingerprint="f", created_at=T0)
            )
            is not None
        )
        assert await uow.orders.get(order.id) is not None


async def test_api_keys_are_found_by_hash_until_revoked(storage: UnitOfWorkFactory) -> None:
    key = ApiKey(
        id="key_1",
        name="shop",
        prefix="og_sk_abc",
        secret_hash="h1",
        created_at=T0,
        scopes=("orders:read", "payments:refund"),
    )
    async with storage() as uow:
        await uow.api_keys.add(key)
        await uow.commit()
    async with storage() as uow:
        assert await uow.api_keys.find_active("h1") == key
        assert await uow.api_keys.count_active() == 1
        assert await uow.api_keys.revoke("key_1", T0) is True
        assert await uow.api_keys.revoke("key_1", T0) is False
        await uow.commit()
    async with storage() as uow:
        assert await uow.api_keys.find_active("h1") is None
        assert await uow.api_keys.count_active() == 0
        [listed] = await uow.api_keys.all()
    assert listed.revoked_at == T0
    assert listed.scopes == ("orders:read", "payments:refund"), "scopes are stored with the key"


async def test_an_order_added_with_its_first_attempt_keeps_it(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)
    order.attempts.append(
        PaymentAttempt(
            id="pay_first",
            order_id=order.id,
            seq=1,
            provider="sandbox",
            method="pm_card_visa",
            amount=order.total.amount,
            currency="EUR",
            idempotency_key="orderguard-pay_first",
            created_at=T0,
            updated_at=T0,
        )
    )
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        loaded = await uow.orders.get(order.id)
    assert loaded is not None and loaded.state is OrderState.PAYMENT_PENDING
    assert [(a.id, a.state, a.idempotency_key) for a in loaded.attempts] == [
        ("pay_first", AttemptState.PENDING, "orderguard-pay_first")
    ]


async def test_orders_waiting_for_a_provider_are_listed_oldest_first(
    storage: UnitOfWorkFactory,
) -> None:
    waiting = [new_order(at=T0 + timedelta(seconds=i)) for i in range(3)]
    for order in waiting[:2]:
        order.payment_method = "pm_card_visa"
    async with storage() as uow:
        for order in waiting:
            await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        assert await uow.orders.waiting_for_payment(10) == [waiting[0].id, waiting[1].id]
        assert await uow.orders.waiting_for_payment(1) == [waiting[0].id]


async def test_orders_changed_into_a_state_are_paged_oldest_change_first(
    storage: UnitOfWorkFactory,
) -> None:
    before, first, second, third, received = (new_order(at=T0) for _ in range(5))
    for minutes, order in ((1, before), (11, first), (12, second), (13, third)):
        order.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=T0 + timedelta(minutes=minutes))
    async with storage() as uow:
        for order in (before, first, second, third, received):
            await uow.orders.add(order)
        await uow.commit()
    since = T0 + timedelta(minutes=10)
    async with storage() as uow:
        page = await uow.orders.changed_in_state(
            OrderState.CANCELLED, since=since, after=None, limit=2
        )
        rest = await uow.orders.changed_in_state(
            OrderState.CANCELLED, since=since, after=page[-1], limit=2
        )
    assert [order_id for _, order_id in page] == [first.id, second.id]
    assert page[0][0] == T0 + timedelta(minutes=11)
    assert [order_id for _, order_id in rest] == [third.id]


async def test_stuck_and_flagged_orders_are_found_by_their_filters(
    storage: UnitOfWorkFactory,
) -> None:
    old, fresh, finished, flagged = (new_order(at=T0) for _ in range(4))
    old.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0 + timedelta(minutes=1))
    fresh.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0 + timedelta(minutes=30))
    finished.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=T0 + timedelta(minutes=1))
    flagged.flag(
        FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=T0 + timedelta(minutes=30)
    )
    async with storage() as uow:
        for order in (old, fresh, finished, flagged):
            await uow.orders.add(order)
        await uow.commit()
    horizon = T0 + timedelta(minutes=10)
    async with storage() as uow:
        stuck = await uow.orders.search(OrderQuery(limit=10, stuck_since=horizon))
        in_review = await uow.orders.search(OrderQuery(limit=10, flagged=True))
        both = await uow.orders.search(OrderQuery(limit=10, flagged=True, stuck_since=horizon))
    assert [o.id for o in stuck] == [old.id]
    assert [(o.id, o.flag_reason) for o in in_review] == [(flagged.id, "duplicate charge: pi_2")]
    assert both == []


async def test_whether_an_order_was_taken_live_reads_back_and_defaults_to_test_mode(
    storage: UnitOfWorkFactory,
) -> None:
    live, test = new_order(at=T0), new_order(at=T0)
    live.livemode = True
    async with storage() as uow:
        await uow.orders.add(live)
        await uow.orders.add(test)
        await uow.commit()
    async with storage() as uow:
        loaded_live, loaded_test = await uow.orders.get(live.id), await uow.orders.get(test.id)
        listed = {o.id: o.livemode for o in await uow.orders.search(OrderQuery(limit=10))}
    assert loaded_live is not None and loaded_live.livemode is True
    assert loaded_test is not None and loaded_test.livemode is False
    assert listed == {live.id: True, test.id: False}


async def test_flags_are_stored_as_a_set_with_their_history(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)
    order.flag(FlagReason.AMOUNT_MISMATCH, "40.00 EUR", cause=Cause.RECONCILIATION, at=T0)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    later = T0 + timedelta(minutes=5)
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        loaded.flag(FlagReason.SHOPPER_REPORT, "where is it?", cause=Cause.SHOPPER, at=later)
        loaded.clear_flag(FlagReason.AMOUNT_MISMATCH, "refunded", actor="maria", at=later)
        await uow.orders.save(loaded)
        await uow.commit()
    async with storage() as uow:
        final = await uow.orders.get(order.id)
        listed = await uow.orders.search(OrderQuery(limit=10))
    assert final is not None
    flags = [
        (f.reason, f.detail, f.raised_by, f.raised_at, f.cleared_by, f.cleared_at)
        for f in final.flags
    ]
    assert flags == [
        (FlagReason.AMOUNT_MISMATCH, "40.00 EUR", "reconciliation", T0, "maria", later),
        (FlagReason.SHOPPER_REPORT, "where is it?", "shopper", later, None, None),
    ]
    assert listed[0].flags == final.flags


async def test_the_review_queue_holds_only_orders_with_an_open_flag(
    storage: UnitOfWorkFactory,
) -> None:
    answered, cleared, waiting = (new_order(at=T0) for _ in range(3))
    answered.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
    answered.flag(FlagReason.PAYMENT_UNRESOLVED, "pending", cause=Cause.JANITOR, at=T0)
    answered.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=T0)
    cleared.flag(FlagReason.SHOPPER_REPORT, "help", cause=Cause.SHOPPER, at=T0)
    cleared.clear_flag(FlagReason.SHOPPER_REPORT, "answered by mail", actor="li", at=T0)
    waiting.flag(FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=T0)
    async with storage() as uow:
        for order in (answered, cleared, waiting):
            await uow.orders.add(order)
        await uow.commit()
    async with storage() as uow:
        in_review = await uow.orders.search(OrderQuery(limit=10, flagged=True))
    assert [o.id for o in in_review] == [waiting.id]
