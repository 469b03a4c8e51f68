"""The read-only statistics port (``storage.stats``: what ``/metrics``, ``/readyz``,
``doctor`` and the console's dashboard read), one contract run unchanged on memory, SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.storage import migrate
from orderguard.storage.ports import ConsoleCounts, OrderQuery, UnitOfWorkFactory, WebhookRecord
from orderguard.storage.unit_of_work import SqlStorage
from tests.factories import new_order

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
_S = OrderState


def _in(state: OrderState, *, placed: timedelta, changed: timedelta) -> Order:
    """An order placed ``placed`` ago that reached ``state`` ``changed`` ago."""
    order = new_order(at=NOW - placed)
    path = {
        _S.RECEIVED: [],
        _S.PAYMENT_PENDING: [_S.PAYMENT_PENDING],
        _S.PAYMENT_UNKNOWN: [_S.PAYMENT_PENDING, _S.PAYMENT_UNKNOWN],
        _S.ACTION_REQUIRED: [_S.PAYMENT_PENDING, _S.ACTION_REQUIRED],
        _S.PAYMENT_FAILED: [_S.PAYMENT_PENDING, _S.PAYMENT_FAILED],
        _S.PAID: [_S.PAYMENT_PENDING, _S.PAID],
    }[state]
    for step in path:
        order.move_to(step, cause=Cause.API, at=NOW - changed)
    return order


async def _add(storage: UnitOfWorkFactory, *orders: Order) -> None:
    async with storage() as uow:
        for order in orders:
            await uow.orders.add(order)
        await uow.commit()


async def test_only_payments_waiting_on_the_provider_unchanged_for_30_minutes_are_stuck(
    storage: UnitOfWorkFactory,
) -> None:
    hour = 60 * MIN
    await _add(
        storage,
        _in(_S.PAYMENT_UNKNOWN, placed=2 * hour, changed=hour),
        _in(_S.PAYMENT_PENDING, placed=2 * hour, changed=31 * MIN),
        _in(_S.PAYMENT_PENDING, placed=2 * hour, changed=29 * MIN),  # not yet
        _in(_S.ACTION_REQUIRED, placed=2 * hour, changed=hour),  # the shopper's turn
        _in(_S.RECEIVED, placed=2 * hour, changed=2 * hour),
        _in(_S.PAYMENT_FAILED, placed=2 * hour, changed=hour),
        _in(_S.PAID, placed=2 * hour, changed=hour),
    )
    stats = storage.stats

    reading = await stats.read(now=NOW, watched=frozenset(), shortest_wait=timedelta(0))
    counts = await stats.counts(stuck_since=NOW - 30 * MIN)
    closer = await stats.counts(stuck_since=NOW - 10 * MIN)

    assert reading.stuck_by_state == {"payment_pending": 1, "payment_unknown": 1}
    assert counts == ConsoleCounts(flagged=0, stuck=2, webhook_backlog=0)
    assert closer.stuck == 3, "a shorter look finds the younger pending payment too"


async def test_the_stuck_queue_lists_the_same_orders_the_count_counts(
    storage: UnitOfWorkFactory,
) -> None:
    hour = 60 * MIN
    unknown = _in(_S.PAYMENT_UNKNOWN, placed=2 * hour, changed=hour)
    pending = _in(_S.PAYMENT_PENDING, placed=3 * hour, changed=hour)
    await _add(
        storage,
        unknown,
        pending,
        _in(_S.ACTION_REQUIRED, placed=2 * hour, changed=hour),
        _in(_S.RECEIVED, placed=2 * hour, changed=2 * hour),
        _in(_S.PAYMENT_FAILED, placed=2 * hour, changed=hour),
    )
    since = NOW - 30 * MIN

    async with storage() as uow:
        listed = await uow.orders.search(OrderQuery(limit=10, stuck_since=since))

    assert [o.id for o in listed] == [unknown.id, pending.id], "newest first"
    assert (await storage.stats.counts(stuck_since=since)).stuck == len(listed)


async def test_the_dashboard_counts_states_flags_and_the_webhook_backlog(
    storage: UnitOfWorkFactory,
) -> None:
    flagged = _in(_S.PAID, placed=MIN, changed=MIN)
    flagged.flag(FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=NOW)
    await _add(
        storage,
        flagged,
        _in(_S.PAID, placed=MIN, changed=MIN),
        _in(_S.RECEIVED, placed=MIN, changed=MIN),
    )
    async with storage() as uow:
        for n in (1, 2):
            record = WebhookRecord(
                id=f"whk_{n}",
                provider="sandbox",
                event_id=f"evt_{n}",
                type="payment_intent.succeeded",
                headers={},
                body=b"{}",
                received_at=NOW,
            )
            assert await uow.webhooks.record(record)
        await uow.webhooks.processed("whk_1", at=NOW, order_id=None)
        await uow.commit()

    assert await storage.stats.orders_by_state() == {"paid": 2, "received": 1}
    assert await storage.stats.counts(stuck_since=NOW) == ConsoleCounts(
        flagged=1, stuck=0, webhook_backlog=1
    )


async def test_a_reading_has_ages_flags_janitor_backlog_webhooks_and_heartbeats(
    storage: UnitOfWorkFactory,
) -> None:
    old = _in(_S.PAYMENT_UNKNOWN, placed=2 * 60 * MIN, changed=2 * 60 * MIN)
    old.flag(FlagReason.PAYMENT_UNRESOLVED, "gave up", cause=Cause.JANITOR, at=NOW)
    fresh = _in(_S.PAYMENT_PENDING, placed=5 * MIN, changed=5 * MIN)
    young = _in(_S.PAYMENT_PENDING, placed=MIN / 6, changed=MIN / 6)
    await _add(storage, old, fresh, young, _in(_S.PAID, placed=MIN, changed=MIN))
    async with storage() as uow:
        for n, provider in ((1, "stripe"), (2, "stripe"), (3, "sandbox")):
            record = WebhookRecord(
                id=f"whk_{n}",
                provider=provider,
                event_id=f"evt_{n}",
                type="payment_intent.succeeded",
                headers={},
                body=b"{}",
                received_at=NOW - n * MIN,
            )
            assert await uow.webhooks.record(record)
        await uow.webhooks.failed("whk_2", error="locked", retry_at=NOW)
        await uow.webhooks.failed("whk_1", error="locked", retry_at=NOW)
        await uow.webhooks.processed("whk_1", at=NOW, order_id=None)
        await uow.leases.beat("w1", started_at=NOW - 10 * MIN, now=NOW - 2 * MIN)
        await uow.leases.beat("w2", started_at=NOW - 10 * MIN, now=NOW - MIN)
        await uow.commit()

    reading = await storage.stats.read(
        now=NOW,
        watched=frozenset({_S.PAYMENT_PENDING, _S.PAYMENT_UNKNOWN}),
        shortest_wait=timedelta(seconds=30),
    )

    assert reading.now == NOW
    assert reading.orders_by_state == {"payment_unknown": 1, "payment_pending": 2, "paid": 1}
    assert reading.open_by_age == {
        "payment_unknown": {"0-1m": 0, "1m-10m": 0, "10m-1h": 0, "1h-1d": 1, "1d+": 0},
        "payment_pending": {"0-1m": 1, "1m-10m": 1, "10m-1h": 0, "1h-1d": 0, "1d+": 0},
    }
    # the flagged one is in the review queue: not the oldest unattended one
    assert reading.oldest_open == {"payment_pending": NOW - 5 * MIN}
    assert reading.flagged_by_reason == {"payment_unresolved": 1}
    # flagging changed the old order just now: nothing has been left alone for 30 minutes
    assert reading.stuck_by_state == {"payment_pending": 0, "payment_unknown": 0}
    # the old and the fresh one were last checked at least 30 s ago; the young one not; the
    # old one's first recheck fell due 30 s after it moved, two hours ago
    assert reading.janitor_backlog == 2
    assert reading.janitor_lag == 2 * 60 * MIN - timedelta(seconds=30)
    assert set(reading.webhooks) == {"stripe", "sandbox"}
    stripe, sandbox = reading.webhooks["stripe"], reading.webhooks["sandbox"]
    assert (stripe.received, stripe.processed, stripe.failures, stripe.failing) == (2, 1, 2, 1)
    assert stripe.oldest_unprocessed == NOW - 2 * MIN
    assert (sandbox.received, sandbox.processed, sandbox.failures, sandbox.failing) == (1, 0, 0, 0)
    assert sandbox.oldest_unprocessed == NOW - 3 * MIN
    assert reading.last_heartbeat == NOW - MIN
    assert await storage.stats.last_heartbeat() == NOW - MIN


async def test_an_empty_store_reads_as_nothing_waiting(storage: UnitOfWorkFactory) -> None:
    reading = await storage.stats.read(
        now=NOW, watched=frozenset({_S.PAYMENT_UNKNOWN}), shortest_wait=timedelta(seconds=10)
    )

    assert reading.orders_by_state == {} and reading.open_by_age == {}
    assert reading.stuck_by_state == {"payment_pending": 0, "payment_unknown": 0}
    assert (reading.janitor_backlog, reading.janitor_lag) == (0, timedelta(0))
    assert reading.webhooks == {} and reading.last_heartbeat is None
    assert await storage.stats.last_heartbeat() is None


async def test_the_store_answers_a_ping_at_the_codes_schema_version(
    storage: UnitOfWorkFactory,
) -> None:
    latency = await storage.stats.ping()
    version = await storage.stats.schema_version()
    their_clock = await storage.stats.database_now()

    assert latency >= 0.0
    assert version == migrate.latest_version()
    if their_clock is not None:  # PostgreSQL's own clock, close to this host's
        assert abs(their_clock - datetime.now(UTC)) < timedelta(minutes=5)


async def test_only_a_server_has_a_connection_limit_and_it_counts_this_connection(
    storage: UnitOfWorkFactory,
) -> None:
    room = await storage.stats.connection_room()
    if isinstance(storage, SqlStorage) and storage.db.dialect == "postgresql":
        assert room is not None
        assert room.max_connections > room.reserved >= 0
        assert room.available == room.max_connections - room.reserved
        assert 1 <= room.in_use <= room.max_connections  # its own reading is open
    else:
        assert room is None, "one file, or memory: no server, no limit"
