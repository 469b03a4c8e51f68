"""The relay's bookkeeping on SQLite and PostgreSQL: leases, order per order, sinks kept
apart, the floor, and what a newly configured sink catches up on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.delivery import EMAILED_EVENTS, DeliveryAttempt, Outcome
from orderguard.storage.outbox import OutboxStore
from orderguard.storage.unit_of_work import SqlStorage
from tests.outbox_kit import committed_ids, live, sql_storage  # noqa: F401 (sql is a fixture)

LEASE = timedelta(seconds=30)


def attempt(event_id: str, sink: str, at: datetime) -> DeliveryAttempt:
    return DeliveryAttempt(event_id, sink, at, Outcome.DELIVERED, None, "r1", 1)


async def test_claims_are_leased_one_event_per_order_in_commit_order(sql: SqlStorage) -> None:
    first, second = await live(sql), await live(sql)
    store, now = OutboxStore(sql.db), datetime.now(UTC) + timedelta(seconds=1)
    events = {o.id: await committed_ids(sql, o.id) for o in (first, second)}
    assert await store.enqueue("s", types=None, since=now - LEASE, now=now, batch=1000) == 12
    claimed = await store.claim("s", owner="r1", now=now, until=now + LEASE, limit=100)
    assert sorted(d.event.id for d in claimed) == sorted(ids[0] for ids in events.values())
    assert await store.claim("s", owner="r2", now=now, until=now + LEASE, limit=100) == []
    for delivery in claimed:
        await store.delivered(delivery, attempt=attempt(delivery.event.id, "s", now))
    again = await store.claim("s", owner="r2", now=now, until=now + LEASE, limit=100)
    assert sorted(d.event.id for d in again) == sorted(ids[1] for ids in events.values())
    later = now + 2 * LEASE  # r2 died: its leases expire and another relay takes over
    taken = await store.claim("s", owner="r3", now=later, until=later + LEASE, limit=100)
    assert sorted(d.event.id for d in taken) == sorted(d.event.id for d in again)


async def test_sinks_keep_their_own_state_and_types(sql: SqlStorage) -> None:
    order = await live(sql)
    store, now = OutboxStore(sql.db), datetime.now(UTC) + timedelta(seconds=1)
    ids = await committed_ids(sql, order.id)
    assert await store.enqueue("all", types=None, since=now - LEASE, now=now, batch=1000) == 6
    assert (
        await store.enqueue("mail", types=EMAILED_EVENTS, since=now - LEASE, now=now, batch=1000)
        == 5  # payment_unknown is not emailed
    )
    (one,) = await store.claim("all", owner="r1", now=now, until=now + LEASE, limit=10)
    await store.delivered(one, attempt=attempt(one.event.id, "all", now))
    (mail,) = await store.claim("mail", owner="r1", now=now, until=now + LEASE, limit=10)
    assert mail.event.id == ids[0] and mail.attempts == 0  # untouched by the other sink
    oldest = await store.oldest_undelivered("mail", types=EMAILED_EVENTS, since=now - LEASE)
    assert oldest == order.created_at


async def test_a_new_sink_starts_from_since_and_the_floor_skips_settled_events(
    sql: SqlStorage,
) -> None:
    store, now = OutboxStore(sql.db), datetime.now(UTC)
    old = await live(sql, life=(), at=now - timedelta(hours=3))
    recent = await live(sql, life=(), at=now - timedelta(minutes=10))
    since = now - timedelta(hours=1)
    assert await store.enqueue("new", types=None, since=since, now=now, batch=1000) == 1
    (delivery,) = await store.claim("new", owner="r1", now=now, until=now + LEASE, limit=10)
    assert delivery.event.order_id == recent.id
    assert old.id not in {d.event.order_id for d in await store.deliveries(sink="new")}
    async with sql.reader() as uow:  # nothing is copied twice, and nothing older comes back
        assert len(await uow.orders.events(recent.id)) == 1
    assert await store.enqueue("new", types=None, since=since, now=now, batch=1000) == 0
    assert await store.oldest_undelivered("new", types=None, since=since) == recent.created_at
