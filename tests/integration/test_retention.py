"""Retention as the worker and ``orderguard prune`` run it (``services/retention.py``): every
batch until nothing is left, stopping when asked, a dry run that changes nothing, and a
provider's late duplicate of a pruned webhook still refused, end to end."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orderguard.bootstrap import new_worker
from orderguard.domain.delivery import DeliveryAttempt, DeliveryState, Outcome
from orderguard.domain.events import EventType
from orderguard.services.retention import (
    Pruned,
    RetentionPolicy,
    RetentionTooShort,
    count_retained,
    prune_retained,
)
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.worker import PRUNE_EVERY_SECONDS
from tests.integration.conftest import Api
from tests.integration.test_webhooks import awaiting_3ds, by_webhook, deliver, detail, inbox
from tests.outbox_kit import committed_ids, live

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
#: Retention's "now": 31 days after the old rows, so a 30-day retention takes them.
NOW = T0 + timedelta(days=31)
MONTH = RetentionPolicy(outbox=timedelta(days=30), webhook_bodies=timedelta(days=30), batch=2)


def at_now() -> datetime:
    return NOW


async def delivered_long_ago(storage: UnitOfWorkFactory, count: int) -> list[str]:
    """``count`` orders placed at T0 whose one event was delivered an hour later; their ids."""
    orders = [await live(storage, life=(), at=T0) for _ in range(count)]
    async with storage() as uow:
        since = T0 - timedelta(hours=1)
        await uow.outbox.enqueue("s", types=None, since=since, now=NOW, batch=100)
        claimed = await uow.outbox.claim("s", owner="r", now=NOW, until=NOW, limit=100)
        sent = T0 + timedelta(hours=1)
        for d in claimed:
            attempt = DeliveryAttempt(d.event.id, "s", sent, Outcome.DELIVERED, None, "r", 1)
            await uow.outbox.delivered(d, attempt=attempt)
        await uow.commit()
    assert len(claimed) == count
    return [o.id for o in orders]


async def test_every_batch_runs_until_nothing_old_is_left(storage: UnitOfWorkFactory) -> None:
    order_ids = await delivered_long_ago(storage, 5)  # three batches of at most two
    young = await live(storage, life=(), at=NOW - timedelta(days=1))
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(5, 5, 0)
    assert await prune_retained(storage, MONTH, clock=at_now) == Pruned(5, 5, 0)
    for order_id in order_ids:
        assert await committed_ids(storage, order_id) == []
    assert len(await committed_ids(storage, young.id)) == 1
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(0, 0, 0)


async def test_a_dry_run_counts_and_changes_nothing(storage: UnitOfWorkFactory) -> None:
    order_ids = await delivered_long_ago(storage, 3)
    for _ in range(2):
        assert await count_retained(storage, MONTH, clock=at_now) == Pruned(3, 3, 0)
    async with storage.reader() as uow:
        states = [d.state for d in await uow.outbox.deliveries(sink="s")]
    assert states == [DeliveryState.DELIVERED] * 3
    assert all([await committed_ids(storage, i) for i in order_ids])


async def test_a_stopped_worker_prunes_no_further_batch(storage: UnitOfWorkFactory) -> None:
    await delivered_long_ago(storage, 3)
    stop = asyncio.Event()
    stop.set()
    assert await prune_retained(storage, MONTH, clock=at_now, stop=stop) == Pruned()
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(3, 3, 0)


async def test_a_retention_off_prunes_nothing(storage: UnitOfWorkFactory) -> None:
    await delivered_long_ago(storage, 2)
    forever = RetentionPolicy(outbox=None, webhook_bodies=None)
    assert await prune_retained(storage, forever, clock=at_now) == Pruned()
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(2, 2, 0)


@pytest.mark.parametrize("kept", [timedelta(hours=23), timedelta(0), timedelta(days=-30)])
def test_a_retention_shorter_than_a_day_is_refused(kept: timedelta) -> None:
    with pytest.raises(RetentionTooShort):
        RetentionPolicy(outbox=kept, webhook_bodies=None)
    with pytest.raises(RetentionTooShort):
        RetentionPolicy(outbox=None, webhook_bodies=kept)


async def test_a_late_duplicate_of_a_pruned_webhook_is_still_refused(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    webhook = api.provider.webhooks[-1]
    assert (await deliver(api, webhook)).json() == {"received": True, "duplicate": False}

    def in_91_days() -> datetime:
        return datetime.now(UTC) + timedelta(days=91)

    policy = RetentionPolicy(outbox=None, webhook_bodies=timedelta(days=90))
    storage = api.container.storage
    assert await prune_retained(storage, policy, clock=in_91_days) == Pruned(webhook_bodies=1)
    [record] = await inbox(api)
    assert (record.body, record.headers, record.order_id) == (b"", {}, order["id"])

    again = await deliver(api, webhook)
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert len(await inbox(api)) == 1
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert len(by_webhook(document)) == 1, "the duplicate must not be applied again"


async def test_the_worker_applies_the_configured_retention_hourly(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    assert (await deliver(api, api.provider.webhooks[-1])).status_code == 200
    settings = replace(api.container.settings, webhook_body_retention_days=2)
    container = replace(
        api.container, settings=settings, clock=lambda: datetime.now(UTC) + timedelta(days=3)
    )
    duties = {name: (duty, every) for name, duty, every in new_worker(container)._duties(None)}
    duty, every = duties["retention"]
    assert every == PRUNE_EVERY_SECONDS == 3600
    await duty()
    [record] = await inbox(api)
    assert record.body == b"" and record.pruned_at is not None
    assert (await detail(api, order["id"]))["state"] == "paid"


async def test_events_no_sink_wanted_go_too(storage: UnitOfWorkFactory) -> None:
    orders = [await live(storage, life=(), at=T0) for _ in range(5)]
    async with storage() as uow:  # a sink of paid orders only: no order.received is taken
        since, paid = T0 - timedelta(hours=1), frozenset({EventType.PAID})
        assert await uow.outbox.enqueue("s", types=paid, since=since, now=NOW, batch=9) == 0
        await uow.commit()
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(0, 5, 0)
    assert await prune_retained(storage, MONTH, clock=at_now) == Pruned(0, 5, 0)
    for order in orders:
        assert await committed_ids(storage, order.id) == []


async def test_two_workers_pruning_at_once_remove_each_row_once(
    storage: UnitOfWorkFactory,
) -> None:
    await delivered_long_ago(storage, 7)
    both = await asyncio.gather(
        prune_retained(storage, MONTH, clock=at_now), prune_retained(storage, MONTH, clock=at_now)
    )
    assert sum(p.deliveries for p in both) == 7
    assert sum(p.events for p in both) == 7
    assert await count_retained(storage, MONTH, clock=at_now) == Pruned(0, 0, 0)
