"""The outbox relay's bookkeeping (``uow.outbox``), one contract run unchanged on the
in-memory fake, SQLite and PostgreSQL: leases, one event per order in commit order, sinks
kept apart, the floor, what a newly configured sink catches up on, retries and dead letters,
replays, and what support reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.delivery import (
    EMAILED_EVENTS,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Outcome,
)
from orderguard.domain.events import EventType
from orderguard.domain.states import OrderState
from orderguard.storage.ports import Undelivered, UnitOfWorkFactory
from tests.outbox_kit import committed_ids, live

LEASE = timedelta(seconds=30)


def attempt(
    event_id: str, sink: str, at: datetime, outcome: Outcome = Outcome.DELIVERED, error: str = ""
) -> DeliveryAttempt:
    return DeliveryAttempt(event_id, sink, at, outcome, error or None, "r1", 1)


async def enqueue(
    storage: UnitOfWorkFactory,
    sink: str,
    *,
    now: datetime,
    since: datetime | None = None,
    types: frozenset[EventType] | None = None,
    batch: int = 1000,
) -> int:
    async with storage() as uow:
        created = await uow.outbox.enqueue(
            sink, types=types, since=since or now - LEASE, now=now, batch=batch
        )
        await uow.commit()
    return created


async def claim(
    storage: UnitOfWorkFactory, sink: str, *, owner: str, now: datetime, limit: int = 100
) -> list[Delivery]:
    async with storage() as uow:
        claimed = await uow.outbox.claim(sink, owner=owner, now=now, until=now + LEASE, limit=limit)
        await uow.commit()
    return claimed


async def delivered(storage: UnitOfWorkFactory, delivery: Delivery, at: datetime) -> None:
    async with storage() as uow:
        await uow.outbox.delivered(delivery, attempt=attempt(delivery.event.id, delivery.sink, at))
        await uow.commit()


async def fail(
    storage: UnitOfWorkFactory, delivery: Delivery, at: datetime, retry_at: datetime | None
) -> None:
    outcome = Outcome.FAILED if retry_at else Outcome.DEAD
    async with storage() as uow:
        await uow.outbox.failed(
            delivery,
            attempt=attempt(delivery.event.id, delivery.sink, at, outcome, "HTTP 500"),
            retry_at=retry_at,
        )
        await uow.commit()


async def undelivered(
    storage: UnitOfWorkFactory, sink: str, *, since: datetime, types: frozenset[EventType] | None
) -> Undelivered:
    async with storage.reader() as uow:
        return await uow.outbox.undelivered(sink, types=types, since=since)


async def test_claims_are_leased_one_event_per_order_in_commit_order(
    storage: UnitOfWorkFactory,
) -> None:
    first, second = await live(storage), await live(storage)
    now = datetime.now(UTC) + timedelta(seconds=1)
    events = {o.id: await committed_ids(storage, o.id) for o in (first, second)}
    assert await enqueue(storage, "s", now=now) == 12
    claimed = await claim(storage, "s", owner="r1", now=now)
    assert sorted(d.event.id for d in claimed) == sorted(ids[0] for ids in events.values())
    assert [d.event.id for d in claimed] == [events[first.id][0], events[second.id][0]]
    assert await claim(storage, "s", owner="r2", now=now) == []
    for delivery in claimed:
        await delivered(storage, delivery, now)
    again = await claim(storage, "s", owner="r2", now=now)
    assert sorted(d.event.id for d in again) == sorted(ids[1] for ids in events.values())
    later = now + 2 * LEASE  # r2 died: its leases expire and another relay takes over
    taken = await claim(storage, "s", owner="r3", now=later)
    assert sorted(d.event.id for d in taken) == sorted(d.event.id for d in again)


async def test_a_claim_takes_no_more_than_its_limit_oldest_first(
    storage: UnitOfWorkFactory,
) -> None:
    orders = [await live(storage, life=()) for _ in range(3)]
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert await enqueue(storage, "s", now=now) == 3
    claimed = await claim(storage, "s", owner="r1", now=now, limit=2)
    assert [d.event.order_id for d in claimed] == [orders[0].id, orders[1].id]
    (rest,) = await claim(storage, "s", owner="r2", now=now)
    assert rest.event.order_id == orders[2].id


async def test_sinks_keep_their_own_state_and_types(storage: UnitOfWorkFactory) -> None:
    order = await live(storage)
    now = datetime.now(UTC) + timedelta(seconds=1)
    ids = await committed_ids(storage, order.id)
    assert await enqueue(storage, "all", now=now) == 6
    assert (
        await enqueue(storage, "mail", now=now, types=EMAILED_EVENTS)
        == 5  # payment_unknown is not emailed
    )
    (one,) = await claim(storage, "all", owner="r1", now=now, limit=10)
    await delivered(storage, one, now)
    (mail,) = await claim(storage, "mail", owner="r1", now=now, limit=10)
    assert mail.event.id == ids[0] and mail.attempts == 0  # untouched by the other sink
    waiting = await undelivered(storage, "mail", since=now - LEASE, types=EMAILED_EVENTS)
    assert waiting == Undelivered(5, order.created_at)
    assert (await undelivered(storage, "all", since=now - LEASE, types=None)).count == 5


async def test_a_new_sink_starts_from_since_and_the_floor_skips_settled_events(
    storage: UnitOfWorkFactory,
) -> None:
    now = datetime.now(UTC)
    old = await live(storage, life=(), at=now - timedelta(hours=3))
    recent = await live(storage, life=(), at=now - timedelta(minutes=10))
    since = now - timedelta(hours=1)
    assert await undelivered(storage, "new", since=since, types=None) == Undelivered(
        1, recent.created_at
    )  # counted before the relay ever ran for the sink
    assert await enqueue(storage, "new", now=now, since=since) == 1
    (delivery,) = await claim(storage, "new", owner="r1", now=now, limit=10)
    assert delivery.event.order_id == recent.id
    async with storage.reader() as uow:
        mine = await uow.outbox.deliveries(sink="new")
    assert old.id not in {d.event.order_id for d in mine}
    async with storage.reader() as uow:  # nothing is copied twice, and nothing older comes back
        assert len(await uow.orders.events(recent.id)) == 1
    assert await enqueue(storage, "new", now=now, since=since) == 0
    waiting = await undelivered(storage, "new", since=since, types=None)
    assert waiting == Undelivered(1, recent.created_at)


async def test_the_floor_moves_only_past_events_committed_long_enough_ago(
    storage: UnitOfWorkFactory,
) -> None:
    now = datetime.now(UTC)
    await live(storage, life=(), at=now - timedelta(minutes=10))
    fresh = await live(storage, life=(), at=now - timedelta(minutes=1))
    since = now - timedelta(hours=1)
    only_cancellations = frozenset({EventType.CANCELLED})
    assert await enqueue(storage, "s", now=now, since=since, types=only_cancellations) == 0
    # the settled event is below the floor now; the fresh one is still considered
    assert await enqueue(storage, "s", now=now, since=since) == 1
    async with storage.reader() as uow:
        (delivery,) = await uow.outbox.deliveries(sink="s")
    assert delivery.event.order_id == fresh.id


async def test_an_enqueue_copies_at_most_its_batch_and_the_rest_next_time(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage)
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert await enqueue(storage, "s", now=now, batch=4) == 4
    assert await enqueue(storage, "s", now=now, batch=4) == 2
    async with storage.reader() as uow:
        rows = await uow.outbox.deliveries(sink="s")
    assert [d.event.id for d in reversed(rows)] == await committed_ids(storage, order.id)


async def test_a_failure_is_retried_at_its_time_then_becomes_a_dead_letter(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    await enqueue(storage, "hook", now=now)
    (first,) = await claim(storage, "hook", owner="r1", now=now)
    retry_at = now + timedelta(minutes=1)
    await fail(storage, first, now, retry_at)
    assert await claim(storage, "hook", owner="r1", now=now + LEASE) == []  # not due yet
    (second,) = await claim(storage, "hook", owner="r1", now=retry_at)
    assert (second.state, second.attempts, second.last_error) == ("pending", 1, "HTTP 500")
    assert second.next_attempt_at == retry_at
    await fail(storage, second, retry_at, None)
    assert await claim(storage, "hook", owner="r1", now=retry_at + 2 * LEASE) == []
    async with storage.reader() as uow:
        (dead,) = await uow.outbox.deliveries(state=DeliveryState.DEAD)
        counts = await uow.outbox.dead_counts()
        tries = await uow.outbox.attempts(dead.event.id)
    assert (dead.event.order_id, dead.attempts, dead.dead_at) == (order.id, 2, retry_at)
    assert counts == {"hook": 1}
    assert [(a.at, a.outcome, a.error) for a in tries] == [
        (now, Outcome.FAILED, "HTTP 500"),
        (retry_at, Outcome.DEAD, "HTTP 500"),
    ]
    waiting = await undelivered(storage, "hook", since=now - LEASE, types=None)
    assert waiting == Undelivered(0, None)  # dead letters wait for support, not the relay


async def test_an_earlier_event_still_pending_holds_back_the_orders_later_ones(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=(OrderState.CANCELLED,))
    now = datetime.now(UTC) + timedelta(seconds=1)
    received, cancelled = await committed_ids(storage, order.id)
    await enqueue(storage, "hook", now=now)
    (first,) = await claim(storage, "hook", owner="r1", now=now)
    assert first.event.id == received
    await fail(storage, first, now, now + timedelta(hours=1))
    assert await claim(storage, "hook", owner="r1", now=now + LEASE) == []  # waits its turn
    await fail(storage, first, now, None)  # dead: the order's next event may go
    (second,) = await claim(storage, "hook", owner="r1", now=now + LEASE)
    assert second.event.id == cancelled


async def test_released_leases_are_claimed_again_at_once_but_only_the_owners(
    storage: UnitOfWorkFactory,
) -> None:
    await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    await enqueue(storage, "s", now=now)
    claimed = await claim(storage, "s", owner="r1", now=now)
    async with storage() as uow:
        await uow.outbox.release(claimed, owner="someone else")
        await uow.commit()
    assert await claim(storage, "s", owner="r2", now=now) == []
    async with storage() as uow:
        await uow.outbox.release(claimed, owner="r1")
        await uow.commit()
    assert [d.id for d in await claim(storage, "s", owner="r2", now=now)] == [d.id for d in claimed]


async def test_a_replay_makes_dead_letters_pending_with_fresh_attempts(
    storage: UnitOfWorkFactory,
) -> None:
    a, b = await live(storage, life=()), await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    for sink in ("x", "y"):
        await enqueue(storage, sink, now=now)
        for delivery in await claim(storage, sink, owner="r1", now=now):
            await fail(storage, delivery, now, None)
    later = now + timedelta(minutes=5)
    async with storage() as uow:
        assert await uow.outbox.replay(now=later, sink="x") == 2
        await uow.commit()
    async with storage.reader() as uow:
        assert await uow.outbox.dead_counts() == {"y": 2}
        rows = await uow.outbox.deliveries(sink="x")
    assert {(d.state, d.attempts, d.next_attempt_at, d.dead_at) for d in rows} == {
        ("pending", 0, later, None)
    }
    (a_event,) = await committed_ids(storage, a.id)
    async with storage() as uow:
        assert await uow.outbox.replay(now=later, event_id=a_event) == 1  # its dead one, at y
        assert await uow.outbox.replay(now=later) == 1  # every other dead letter: b's at y
        assert await uow.outbox.replay(now=later) == 0
        await uow.commit()
    (b_event,) = await committed_ids(storage, b.id)
    async with storage.reader() as uow:
        assert await uow.outbox.dead_counts() == {}
        assert {d.sink for d in await uow.outbox.deliveries(event_id=b_event)} == {"x", "y"}


async def test_an_event_named_with_a_sink_is_sent_there_again_whatever_its_state(
    storage: UnitOfWorkFactory,
) -> None:
    order = await live(storage, life=())
    (event_id,) = await committed_ids(storage, order.id)
    now = datetime.now(UTC) + timedelta(seconds=1)
    await enqueue(storage, "x", now=now)
    (done,) = await claim(storage, "x", owner="r1", now=now)
    await delivered(storage, done, now)
    later = now + timedelta(minutes=1)
    async with storage() as uow:
        assert await uow.outbox.replay(now=later, event_id=event_id, sink="x") == 1
        assert await uow.outbox.replay(now=later, event_id=event_id, sink="never-ran") == 1
        assert await uow.outbox.replay(now=later, event_id="evt_unknown", sink="x") == 0
        await uow.commit()
    async with storage.reader() as uow:
        rows = await uow.outbox.deliveries(event_id=event_id)
    assert sorted((d.sink, d.state, d.attempts, d.delivered_at) for d in rows) == [
        ("never-ran", "pending", 0, None),
        ("x", "pending", 0, None),
    ]
    assert {d.event.id for d in await claim(storage, "never-ran", owner="r1", now=later)} == {
        event_id
    }


async def test_support_reads_deliveries_newest_event_first_with_filters(
    storage: UnitOfWorkFactory,
) -> None:
    a, b = await live(storage, life=()), await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    for sink in ("b-sink", "a-sink"):
        await enqueue(storage, sink, now=now)
    (a_event,), (b_event,) = await committed_ids(storage, a.id), await committed_ids(storage, b.id)
    async with storage.reader() as uow:
        every = await uow.outbox.deliveries()
        firsts = await uow.outbox.deliveries(limit=1)
        of_a = await uow.outbox.deliveries(order_id=a.id)
        at_a_sink = await uow.outbox.deliveries(sink="a-sink")
        delivered_ = await uow.outbox.deliveries(state=DeliveryState.DELIVERED)
        one = await uow.outbox.delivery(every[-1].id)
        missing = await uow.outbox.delivery(10**9)
        event = await uow.outbox.event(a_event)
        no_event = await uow.outbox.event("evt_unknown")
    assert [(d.event.id, d.sink) for d in every] == [
        (b_event, "a-sink"),
        (b_event, "b-sink"),
        (a_event, "a-sink"),
        (a_event, "b-sink"),
    ]
    assert [(d.event.id, d.sink) for d in firsts] == [(b_event, "a-sink")]
    assert {d.event.order_id for d in of_a} == {a.id} and len(of_a) == 2
    assert [d.event.id for d in at_a_sink] == [b_event, a_event]
    assert delivered_ == []
    assert one == every[-1]
    assert missing is None and no_event is None
    assert event is not None and (event.id, event.order_id, event.type) == (
        a_event,
        a.id,
        EventType.RECEIVED,
    )


async def test_a_long_error_is_kept_to_its_first_2000_characters(
    storage: UnitOfWorkFactory,
) -> None:
    await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    await enqueue(storage, "s", now=now)
    (delivery,) = await claim(storage, "s", owner="r1", now=now)
    long = attempt(delivery.event.id, "s", now, Outcome.FAILED, "x" * 5000)
    async with storage() as uow:
        await uow.outbox.failed(delivery, attempt=long, retry_at=now + LEASE)
        await uow.commit()
    async with storage.reader() as uow:
        (row,) = await uow.outbox.deliveries()
        (tried,) = await uow.outbox.attempts(delivery.event.id)
    assert row.last_error == "x" * 2000 and tried.error == "x" * 2000


async def test_bookkeeping_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    await live(storage, life=())
    now = datetime.now(UTC) + timedelta(seconds=1)
    with pytest.raises(RuntimeError):
        async with storage() as uow:
            assert await uow.outbox.enqueue("s", types=None, since=now - LEASE, now=now, batch=9)
            raise RuntimeError("the relay died")
    async with storage.reader() as uow:
        assert await uow.outbox.deliveries() == []
    assert await enqueue(storage, "s", now=now) == 1
