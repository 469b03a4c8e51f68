"""The recovery storage contract (leases, webhook inbox, sweep findings) on every back end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.storage.ports import SweepFinding, UnitOfWorkFactory, WebhookRecord
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WATCHED = frozenset({OrderState.PAYMENT_UNKNOWN, OrderState.PAYMENT_PENDING})


async def _unknown_orders(storage: UnitOfWorkFactory, count: int) -> list[str]:
    ids = []
    async with storage() as uow:
        for i in range(count):
            order = new_order(at=T0)
            order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
            order.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=T0 + timedelta(seconds=i))
            await uow.orders.add(order)
            ids.append(order.id)
        await uow.commit()
    return ids


async def _claim(
    storage: UnitOfWorkFactory,
    owner: str,
    now: datetime,
    limit: int = 10,
) -> list[str]:
    async with storage() as uow:
        claimed = await uow.leases.claim_due_orders(
            WATCHED,
            now=now,
            first_due_before=now - timedelta(seconds=10),
            owner=owner,
            until=now + timedelta(seconds=30),
            limit=limit,
        )
        await uow.commit()
    return claimed


async def test_due_orders_are_leased_to_one_worker_until_released_or_expired(
    storage: UnitOfWorkFactory,
) -> None:
    ids = await _unknown_orders(storage, 3)
    assert await _claim(storage, "w1", T0 + timedelta(seconds=5)) == []  # not due yet
    now = T0 + timedelta(seconds=12)
    first = await _claim(storage, "w1", now, limit=2)
    assert len(first) == 2 and set(first) <= set(ids)
    second = await _claim(storage, "w2", now)
    assert second == sorted(set(ids) - set(first))
    assert await _claim(storage, "w3", now) == []
    async with storage() as uow:
        await uow.leases.release(first[0], "someone-else")  # only the holder can release
        await uow.leases.release(first[1], "w1")
        await uow.commit()
    assert await _claim(storage, "w3", now) == [first[1]]
    assert sorted(await _claim(storage, "w4", now + timedelta(seconds=31))) == sorted(ids)


async def test_an_order_whose_next_check_is_later_is_not_claimed(
    storage: UnitOfWorkFactory,
) -> None:
    [order_id] = await _unknown_orders(storage, 1)
    async with storage() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        order.checked(T0 + timedelta(seconds=10), next_at=T0 + timedelta(minutes=5))
        await uow.orders.save(order)
        await uow.commit()
    assert await _claim(storage, "w1", T0 + timedelta(minutes=4)) == []
    assert await _claim(storage, "w1", T0 + timedelta(minutes=5)) == [order_id]
    async with storage() as uow:
        again = await uow.orders.get(order_id)
    assert again is not None and (again.checks, again.next_check_at) == (
        1,
        T0 + timedelta(minutes=5),
    )


async def _unknown_orders_with_attempts(storage: UnitOfWorkFactory, count: int) -> list[str]:
    """``count`` orders left in ``payment_unknown`` by an attempt; every other one flagged."""
    ids = []
    async with storage() as uow:
        for i in range(count):
            order = new_order(at=T0)
            attempt = PaymentAttempt(
                f"pay_{i}", order.id, 1, "memory", "pm_card_visa", 4848, "EUR", f"key_{i}", T0, T0
            )
            order.start_attempt(attempt, cause=Cause.API, at=T0)
            attempt.move_to(AttemptState.UNKNOWN, at=T0)
            order.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=T0 + timedelta(seconds=i))
            if i % 2:
                order.flag(FlagReason.OTHER, "look at it", cause=Cause.API, at=T0)
            await uow.orders.add(order)
            ids.append(order.id)
        await uow.commit()
    return ids


async def test_the_claim_of_due_orders_reads_them_whole_and_leases_them(
    storage: UnitOfWorkFactory,
) -> None:
    ids = await _unknown_orders_with_attempts(storage, 3)
    now = T0 + timedelta(seconds=12)
    async with storage() as uow:
        claimed = await uow.orders.claim_due(
            WATCHED,
            now=now,
            first_due_before=now - timedelta(seconds=10),
            owner="w1",
            until=now + timedelta(seconds=30),
            limit=2,
        )
        await uow.commit()
    async with storage() as uow:
        stored = {order_id: await uow.orders.get(order_id) for order_id in ids}

    assert [order.id for order in claimed] == sorted(ids[:2])  # the two due longest, by id
    for order in claimed:  # lines, attempts, flags: the order as a read gives it
        assert order == stored[order.id]
        assert [a.state for a in order.attempts] == [AttemptState.UNKNOWN]
    assert [len(order.flags) for order in claimed if order.id == ids[1]] == [1]
    rest = sorted(set(ids) - {order.id for order in claimed})
    assert await _claim(storage, "w2", now) == rest  # the others only
    async with storage() as uow:  # given back together, by their holder only
        await uow.leases.release_many([order.id for order in claimed], "someone-else")
        await uow.commit()
    assert await _claim(storage, "w3", now) == []
    async with storage() as uow:
        await uow.leases.release_many([order.id for order in claimed], "w1")
        await uow.leases.release_many([], "w1")  # nothing to give back: nothing happens
        await uow.commit()
    assert await _claim(storage, "w3", now) == sorted(order.id for order in claimed)


async def test_heartbeats_tell_when_a_worker_was_last_alive(storage: UnitOfWorkFactory) -> None:
    async with storage() as uow:
        assert await uow.leases.last_beat() is None
        await uow.leases.beat("w1", started_at=T0, now=T0)
        await uow.leases.beat("w2", started_at=T0, now=T0 + timedelta(seconds=5))
        await uow.leases.beat("w1", started_at=T0, now=T0 + timedelta(seconds=9))
        await uow.commit()
    async with storage() as uow:
        assert await uow.leases.last_beat() == T0 + timedelta(seconds=9)


def _event(event_id: str, at: datetime) -> WebhookRecord:
    return WebhookRecord(
        id=f"whk_{event_id}",
        provider="sandbox",
        event_id=event_id,
        type="payment_intent.succeeded",
        headers={"stripe-signature": "t=1,v1=x"},
        body=b'{"id": "%s"}' % event_id.encode(),
        received_at=at,
    )


async def test_webhooks_are_stored_once_and_processed_or_retried(
    storage: UnitOfWorkFactory,
) -> None:
    async with storage() as uow:
        assert await uow.webhooks.record(_event("evt_1", T0)) is True
        assert await uow.webhooks.record(_event("evt_1", T0)) is False  # duplicate delivery
        assert await uow.webhooks.record(_event("evt_2", T0 + timedelta(seconds=1))) is True
        await uow.commit()
    async with storage() as uow:
        claimed = await uow.webhooks.claim_unprocessed(
            now=T0 + timedelta(seconds=2), owner="w1", until=T0 + timedelta(minutes=1), limit=10
        )
        assert [w.event_id for w in claimed] == ["evt_1", "evt_2"]
        assert claimed[0].headers == {"stripe-signature": "t=1,v1=x"}
        assert claimed[0].body == b'{"id": "evt_1"}'
        await uow.webhooks.processed("whk_evt_1", at=T0 + timedelta(seconds=3), order_id="ord_1")
        await uow.webhooks.failed("whk_evt_2", error="boom", retry_at=T0 + timedelta(minutes=5))
        await uow.commit()
    async with storage() as uow:
        done, failed = await uow.webhooks.get("whk_evt_1"), await uow.webhooks.get("whk_evt_2")
        assert done is not None and failed is not None
        assert (done.processed_at, done.order_id, done.attempts) == (
            T0 + timedelta(seconds=3),
            "ord_1",
            1,
        )
        assert (failed.processed_at, failed.last_error, failed.attempts) == (None, "boom", 1)
        assert (
            await uow.webhooks.claim_unprocessed(
                now=T0 + timedelta(minutes=4), owner="w2", until=T0 + timedelta(minutes=9), limit=9
            )
            == []
        )
        retried = await uow.webhooks.claim_unprocessed(
            now=T0 + timedelta(minutes=5), owner="w2", until=T0 + timedelta(minutes=9), limit=9
        )
        assert [w.event_id for w in retried] == ["evt_2"]
        assert [w.event_id for w in await uow.webhooks.recent(limit=5, failed_only=True)] == [
            "evt_2"
        ]


async def test_a_sweep_finding_is_recorded_once(storage: UnitOfWorkFactory) -> None:
    finding = SweepFinding(
        id="swf_1",
        provider="sandbox",
        provider_ref="pi_1",
        kind="orphan",
        amount=100,
        currency="EUR",
        resolution="refunded",
        found_at=T0,
    )
    async with storage() as uow:
        assert await uow.findings.record(finding) is True
        again = replace(finding, id="swf_2", resolution="flagged")  # same charge, same kind
        assert await uow.findings.record(again) is False
        await uow.commit()
    async with storage() as uow:
        assert await uow.findings.all() == [finding]


async def test_a_new_webhook_is_left_to_its_request_until_the_handoff(
    storage: UnitOfWorkFactory,
) -> None:
    event = replace(_event("evt_h", T0), next_attempt_at=T0 + timedelta(seconds=30))
    async with storage() as uow:
        assert await uow.webhooks.record(event) is True
        await uow.commit()
    async with storage() as uow:
        early = await uow.webhooks.claim_unprocessed(
            now=T0 + timedelta(seconds=29), owner="w", until=T0 + timedelta(minutes=1), limit=9
        )
        late = await uow.webhooks.claim_unprocessed(
            now=T0 + timedelta(seconds=30), owner="w", until=T0 + timedelta(minutes=1), limit=9
        )
    assert (early, [w.event_id for w in late]) == ([], ["evt_h"])
