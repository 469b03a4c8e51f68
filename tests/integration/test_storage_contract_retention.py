"""Retention in storage (``uow.outbox.prune``, ``uow.webhooks.prune_bodies``), one contract
run unchanged on the in-memory fake, SQLite and PostgreSQL: what goes, what stays (pending,
dead, young, anything a sink may still need, orders and their timelines), batches bounded,
and a pruned webhook's id still refusing a late duplicate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orderguard.domain.delivery import Delivery, DeliveryAttempt, DeliveryState, Outcome
from orderguard.domain.events import EventType, TimelineEntry
from orderguard.domain.order import Order
from orderguard.storage.ports import (
    EventsPruned,
    IdempotencyRecord,
    OutboxPruned,
    UnitOfWorkFactory,
    WebhookRecord,
)
from tests.outbox_kit import committed_ids, live

#: When the old orders were placed; the cut-off is 30 days later.
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CUT = T0 + timedelta(days=30)
#: When the relay ran (long after everything was committed, so every floor settles).
LATER = T0 + timedelta(days=60)


async def enqueue(storage: UnitOfWorkFactory, sink: str, *, batch: int = 1000) -> int:
    async with storage() as uow:
        created = await uow.outbox.enqueue(
            sink, types=None, since=T0 - timedelta(hours=1), now=LATER, batch=batch
        )
        await uow.commit()
    return created


async def pending_of(storage: UnitOfWorkFactory, sink: str, order: Order) -> list[Delivery]:
    async with storage.reader() as uow:
        found = await uow.outbox.deliveries(sink=sink, order_id=order.id)
    return [d for d in found if d.state is DeliveryState.PENDING]


async def settle(
    storage: UnitOfWorkFactory, sink: str, order: Order, at: datetime, outcome: Outcome
) -> None:
    """Record ``outcome`` (delivered or dead) at ``at`` for each of the order's deliveries."""
    for delivery in await pending_of(storage, sink, order):
        attempt = DeliveryAttempt(delivery.event.id, sink, at, outcome, None, "r1", 1)
        async with storage() as uow:
            if outcome is Outcome.DELIVERED:
                await uow.outbox.delivered(delivery, attempt=attempt)
            else:
                await uow.outbox.failed(delivery, attempt=attempt, retry_at=None)
            await uow.commit()


async def prune(storage: UnitOfWorkFactory, *, limit: int = 1000) -> OutboxPruned:
    async with storage() as uow:
        pruned = await uow.outbox.prune(CUT, limit=limit)
        await uow.commit()
    return pruned


async def history(storage: UnitOfWorkFactory, order: Order) -> tuple[Order, list[TimelineEntry]]:
    async with storage.reader() as uow:
        loaded = await uow.orders.get(order.id)
        timeline = await uow.orders.timeline(order.id)
    assert loaded is not None
    return loaded, timeline


async def test_old_delivered_rows_go_and_everything_else_stays(
    storage: UnitOfWorkFactory,
) -> None:
    gone, dead, waiting = [await live(storage, life=(), at=T0) for _ in range(3)]
    young = await live(storage, life=(), at=CUT + timedelta(days=1))
    assert await enqueue(storage, "s") == 4
    await settle(storage, "s", gone, T0 + timedelta(hours=1), Outcome.DELIVERED)
    await settle(storage, "s", dead, T0 + timedelta(hours=1), Outcome.DEAD)
    await settle(storage, "s", young, CUT + timedelta(days=2), Outcome.DELIVERED)
    before = {o.id: await history(storage, o) for o in (gone, dead, waiting, young)}
    kept = {o.id: await committed_ids(storage, o.id) for o in (dead, waiting, young)}
    (gone_event,) = await committed_ids(storage, gone.id)

    assert await prune(storage) == OutboxPruned(deliveries=1, events=1)

    async with storage.reader() as uow:
        assert await uow.outbox.event(gone_event) is None
        assert await uow.outbox.deliveries(order_id=gone.id) == []
        assert await uow.outbox.attempts(gone_event) == []
        states = {
            o.id: [d.state for d in await uow.outbox.deliveries(order_id=o.id)]
            for o in (dead, waiting, young)
        }
    assert states == {
        dead.id: [DeliveryState.DEAD],
        waiting.id: [DeliveryState.PENDING],
        young.id: [DeliveryState.DELIVERED],
    }
    for order_id, ids in kept.items():
        assert await committed_ids(storage, order_id) == ids
    for order in (gone, dead, waiting, young):
        assert await history(storage, order) == before[order.id], "orders and timelines stay"
    assert await prune(storage) == OutboxPruned(deliveries=0, events=0)


async def test_a_delivery_the_relay_could_copy_again_is_kept_until_its_floor_passes(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=(), at=T0)
    assert await enqueue(storage, "s", batch=1) == 1  # a full batch: the floor stays put
    await settle(storage, "s", order, T0 + timedelta(hours=1), Outcome.DELIVERED)
    assert await prune(storage) == OutboxPruned(deliveries=0, events=0)
    assert await enqueue(storage, "s", batch=1) == 0  # nothing new: the floor moves on
    assert await prune(storage) == OutboxPruned(deliveries=1, events=1)
    assert await enqueue(storage, "s") == 0, "a pruned event must never be delivered again"


async def test_an_event_stays_while_any_sink_may_still_need_it(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=(), at=T0)
    (event_id,) = await committed_ids(storage, order.id)
    assert await enqueue(storage, "email") == 1
    assert await enqueue(storage, "stream") == 1
    await settle(storage, "email", order, T0 + timedelta(hours=1), Outcome.DELIVERED)
    assert await prune(storage) == OutboxPruned(deliveries=1, events=0)
    assert await committed_ids(storage, order.id) == [event_id], "stream has it pending"
    await settle(storage, "stream", order, T0 + timedelta(hours=2), Outcome.DELIVERED)
    assert await prune(storage) == OutboxPruned(deliveries=1, events=1)
    assert await committed_ids(storage, order.id) == []


async def test_a_sink_that_has_not_caught_up_keeps_the_events_above_its_floor(
    storage: UnitOfWorkFactory,
) -> None:
    first, second = await live(storage, life=(), at=T0), await live(storage, life=(), at=T0)
    assert await enqueue(storage, "behind", batch=1) == 1  # considered only the first
    assert await enqueue(storage, "email") == 2
    for order in (first, second):
        await settle(storage, "email", order, T0 + timedelta(hours=1), Outcome.DELIVERED)
    await settle(storage, "behind", first, T0 + timedelta(hours=1), Outcome.DELIVERED)
    # email's two deliveries go; "behind"'s floor is not past its own, nor past any event
    assert await prune(storage) == OutboxPruned(deliveries=2, events=0)
    assert await committed_ids(storage, second.id) != [], "'behind' has yet to consider it"


async def test_a_batch_touches_no_more_rows_than_its_limit(storage: UnitOfWorkFactory) -> None:
    orders = [await live(storage, life=(), at=T0) for _ in range(5)]
    assert await enqueue(storage, "s") == 5
    for order in orders:
        await settle(storage, "s", order, T0 + timedelta(hours=1), Outcome.DELIVERED)
    async with storage.reader() as uow:
        assert await uow.outbox.prunable(CUT) == OutboxPruned(deliveries=5, events=5)
    assert await prune(storage, limit=2) == OutboxPruned(deliveries=2, events=2)
    async with storage.reader() as uow:
        assert await uow.outbox.prunable(CUT) == OutboxPruned(deliveries=3, events=3)
    assert await prune(storage, limit=2) == OutboxPruned(deliveries=2, events=2)
    assert await prune(storage, limit=2) == OutboxPruned(deliveries=1, events=1)
    assert await prune(storage, limit=2) == OutboxPruned(deliveries=0, events=0)


async def prune_events(storage: UnitOfWorkFactory, *, after: int, limit: int) -> EventsPruned:
    async with storage() as uow:
        swept = await uow.outbox.prune_events(CUT, after_seq=after, limit=limit)
        await uow.commit()
    return swept


async def test_nothing_goes_while_no_sink_has_considered_the_events(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=(), at=T0)
    assert await prune(storage) == OutboxPruned(deliveries=0, events=0)
    assert await prune_events(storage, after=0, limit=10) == EventsPruned(0, None)
    assert len(await committed_ids(storage, order.id)) == 1


async def test_events_no_sink_took_go_batch_by_batch_past_those_still_held(
    storage: UnitOfWorkFactory,
) -> None:
    held, skipped, young = (
        await live(storage, life=(), at=T0),
        await live(storage, life=(), at=T0),
        await live(storage, life=(), at=CUT + timedelta(days=1)),
    )
    (held_event,) = await committed_ids(storage, held.id)
    async with storage() as uow:  # "paid only": the three order.received events are skipped
        since = T0 - timedelta(hours=1)
        only = frozenset({EventType.PAID})
        assert await uow.outbox.enqueue("s", types=only, since=since, now=LATER, batch=9) == 0
        assert await uow.outbox.replay(now=LATER, event_id=held_event, sink="s") == 1
        await uow.commit()
    first = await prune_events(storage, after=0, limit=1)
    assert first.deleted == 0, "the first event has a pending delivery (a replay)"
    assert first.last_seq is not None
    second = await prune_events(storage, after=first.last_seq, limit=1)
    assert second.deleted == 1 and second.last_seq is not None
    assert await prune_events(storage, after=second.last_seq, limit=1) == EventsPruned(0, None)
    assert await committed_ids(storage, skipped.id) == []
    assert len(await committed_ids(storage, held.id)) == 1
    assert len(await committed_ids(storage, young.id)) == 1, "younger than the cut-off"


# --- webhook bodies ------------------------------------------------------------------------


def webhook(event_id: str, received_at: datetime) -> WebhookRecord:
    return WebhookRecord(
        id=f"whk_{event_id}",
        provider="stripe",
        event_id=event_id,
        type="payment_intent.succeeded",
        headers={"stripe-signature": "t=1,v1=abc"},
        body=b'{"id": "%s", "card": "secret detail"}' % event_id.encode(),
        received_at=received_at,
        order_id="ord_1",
    )


async def stored(storage: UnitOfWorkFactory, *records: WebhookRecord, processed: bool) -> None:
    async with storage() as uow:
        for record in records:
            assert await uow.webhooks.record(record)
            if processed:
                await uow.webhooks.processed(record.id, at=record.received_at, order_id=None)
            else:
                later = record.received_at + timedelta(minutes=1)
                await uow.webhooks.failed(record.id, error="HTTP 503", retry_at=later)
        await uow.commit()


async def prune_bodies(storage: UnitOfWorkFactory, *, limit: int = 1000) -> int:
    async with storage() as uow:
        cleared = await uow.webhooks.prune_bodies(CUT, at=LATER, limit=limit)
        await uow.commit()
    return cleared


async def test_a_processed_webhook_loses_its_body_but_still_refuses_its_duplicate(
    storage: UnitOfWorkFactory,
) -> None:
    old, young = webhook("evt_old", T0), webhook("evt_young", CUT + timedelta(hours=1))
    unprocessed = webhook("evt_waiting", T0)
    await stored(storage, old, young, processed=True)
    await stored(storage, unprocessed, processed=False)
    async with storage.reader() as uow:
        assert await uow.webhooks.prunable_bodies(CUT) == 1

    assert await prune_bodies(storage) == 1

    async with storage() as uow:
        pruned = await uow.webhooks.get(old.id)
        kept = {w.id: await uow.webhooks.get(w.id) for w in (young, unprocessed)}
        late = replace(old, id="whk_late_copy", received_at=LATER)
        assert await uow.webhooks.record(late) is False, "a pruned event is still a duplicate"
        await uow.commit()
    assert pruned is not None
    assert (pruned.body, pruned.headers, pruned.pruned_at) == (b"", {}, LATER)
    assert (pruned.provider, pruned.event_id, pruned.type, pruned.order_id) == (
        "stripe",
        "evt_old",
        "payment_intent.succeeded",
        "ord_1",
    )
    assert pruned.processed_at == T0
    for record in (young, unprocessed):
        loaded = kept[record.id]
        assert loaded is not None
        assert (loaded.body, loaded.headers, loaded.pruned_at) == (
            record.body,
            record.headers,
            None,
        )
    assert await prune_bodies(storage) == 0


async def test_webhook_bodies_are_cleared_in_bounded_batches(
    storage: UnitOfWorkFactory,
) -> None:
    records = [webhook(f"evt_{n}", T0 + timedelta(minutes=n)) for n in range(3)]
    await stored(storage, *records, processed=True)
    assert [await prune_bodies(storage, limit=2) for _ in range(3)] == [2, 1, 0]
    async with storage.reader() as uow:
        bodies = [(await uow.webhooks.get(r.id)) for r in records]
    assert [b.body if b else None for b in bodies] == [b"", b"", b""]


async def test_a_dry_run_of_idempotency_pruning_counts_what_would_go(
    storage: UnitOfWorkFactory,
) -> None:
    async with storage() as uow:
        for key, at in (("old", T0), ("older", T0 - timedelta(days=1)), ("new", LATER)):
            record = IdempotencyRecord(scope="s", key=key, fingerprint="f", created_at=at)
            assert await uow.idempotency.claim(record) is None
        await uow.commit()
    async with storage.reader() as uow:
        assert await uow.idempotency.prunable(CUT) == 2
    async with storage() as uow:
        assert await uow.idempotency.prune(CUT) == 2
        await uow.commit()
    async with storage.reader() as uow:
        assert await uow.idempotency.prunable(CUT) == 0
