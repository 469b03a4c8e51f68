"""Merchant webhooks through the relay, against a real HTTP receiver on loopback, on SQLite
and PostgreSQL: in order per order, signed (verified with ``standardwebhooks``), retried
with backoff past failures and a timeout, dead-lettered after the limit, replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from orderguard.config import Settings
from orderguard.domain import ids
from orderguard.domain.delivery import DeliveryState, Outcome, WebhookSecret
from orderguard.outbox.configured import build_relay
from orderguard.outbox.merchant_webhooks import new_secret
from orderguard.services.outbox import OutboxSupport, outbox_health
from orderguard.storage.unit_of_work import SqlStorage
from tests.outbox_kit import (  # noqa: F401 (sql is a fixture)
    CANCELLED_LIFE,
    add_endpoint,
    committed_ids,
    live,
    receiver,
    relay_until,
    settings,
    sql_storage,
)


def ids_per_order(accepted: list[tuple[dict[str, str], bytes]]) -> dict[str, list[str]]:
    per: dict[str, list[str]] = {}
    for _, body in accepted:
        document = orjson.loads(body)
        per.setdefault(document["data"]["order_id"], []).append(document["id"])
    return per


async def test_webhooks_arrive_signed_in_order_past_failures_and_a_timeout(
    sql: SqlStorage,
) -> None:
    orders = [await live(sql) for _ in range(3)] + [await live(sql, life=CANCELLED_LIFE)]
    expected = {o.id: await committed_ids(sql, o.id) for o in orders}
    total = sum(len(v) for v in expected.values())
    async with receiver(fail_first=3, hang_on=4, hang_s=2.0) as hook:
        _, secret = await add_endpoint(sql, hook.url)
        relay = build_relay(settings(), sql)
        try:
            await relay_until(relay, lambda: len(hook.accepted) >= total)
        finally:
            await relay.aclose()
    assert ids_per_order(hook.accepted) == expected  # every event once, in commit order
    for headers, body in hook.accepted:
        document = Webhook(secret).verify(body, headers)
        assert headers["webhook-id"] == document["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(hook.accepted[0][1], hook.accepted[0][0])
    failures = [
        a
        for o in orders
        for e in expected[o.id]
        for a in (await OutboxSupport(sql).event(e)).attempts
        if a.outcome is Outcome.FAILED
    ]
    errors = [a.error or "" for a in failures]
    assert sum("answered 500" in e for e in errors) == 3
    assert sum("in time" in e for e in errors) == 1, errors


async def test_a_failing_endpoint_is_dead_lettered_after_the_limit_then_replayed(
    sql: SqlStorage,
) -> None:
    order = await live(sql)
    events = await committed_ids(sql, order.id)
    support = OutboxSupport(sql)
    async with receiver(fail_first=10_000) as hook:
        endpoint, secret = await add_endpoint(sql, hook.url)
        relay = build_relay(settings(outbox_max_attempts="3"), sql)
        try:
            await relay_until(relay, lambda: hook.calls >= 3 * len(events), seconds=30)
            await relay.run_once(owner="relay-test")
            dead = await support.dead_letters(sink=endpoint.sink)
            assert sorted(d.event.id for d in dead) == sorted(events)
            assert hook.calls == 3 * len(events)  # no attempt past the limit
            # an order's next event was tried only once the previous one was dead
            tried = [orjson.loads(body)["id"] for _, body in hook.seen]
            assert tried == [e for e in events for _ in range(3)]
            attempts = (await support.event(events[0])).attempts
            assert [a.outcome for a in attempts] == [Outcome.FAILED, Outcome.FAILED, Outcome.DEAD]
            health = await outbox_health(settings(), sql)
            assert [(h.sink, h.dead_letters, h.lag_seconds) for h in health] == [
                (endpoint.sink, len(events), 0.0)
            ]

            hook.fail_first = 0
            assert await support.replay_dead() == len(events)
            await relay_until(relay, lambda: len(hook.accepted) == len(events))
        finally:
            await relay.aclose()
    assert ids_per_order(hook.accepted) == {order.id: events}
    for headers, body in hook.accepted:
        Webhook(secret).verify(body, headers)
    assert await support.dead_letters() == []
    states = {d.state for d in await support.deliveries_of_order(order.id)}
    assert states == {DeliveryState.DELIVERED}


async def test_one_failing_endpoint_neither_blocks_nor_repeats_another(sql: SqlStorage) -> None:
    order = await live(sql)
    events = await committed_ids(sql, order.id)
    async with receiver(fail_first=10_000) as bad, receiver() as good:
        await add_endpoint(sql, bad.url)
        await add_endpoint(sql, good.url)
        relay = build_relay(settings(outbox_max_attempts="1000"), sql)
        try:
            await relay_until(relay, lambda: len(good.accepted) == len(events))
            for _ in range(5):
                await relay.run_once(owner="relay-test")
        finally:
            await relay.aclose()
    assert ids_per_order(good.accepted) == {order.id: events}
    assert len(good.seen) == len(events)
    assert bad.calls >= 2 and {orjson.loads(b)["id"] for _, b in bad.seen} == {events[0]}


async def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(
    sql: SqlStorage,
) -> None:
    await live(sql, life=())
    async with receiver() as hook:
        endpoint, old = await add_endpoint(sql, hook.url)
        new = new_secret()
        now = datetime.now(UTC)
        rotated = WebhookSecret(ids.new_id("whs"), endpoint.id, new, now)
        async with sql() as uow:
            assert await uow.endpoints.rotate(rotated, old_expire_at=now + timedelta(hours=1))
            await uow.commit()
        relay = build_relay(settings(), sql)
        try:
            await relay_until(relay, lambda: len(hook.accepted) == 1)
        finally:
            await relay.aclose()
    headers, body = hook.accepted[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    async with sql.reader() as uow:
        later = await uow.endpoints.secrets(endpoint.id, at=now + timedelta(hours=2))
    assert [s.secret for s in later] == [new]


async def test_with_no_sink_configured_the_relay_does_nothing_and_shows_no_lag(
    sql: SqlStorage,
) -> None:
    await live(sql)
    relay = build_relay(Settings.load({}), sql)
    report = await relay.run_once(owner="relay-test")
    await relay.aclose()
    assert (report.delivered, report.failed, report.dead) == (0, 0, 0)
    assert await outbox_health(Settings.load({}), sql) == []
    assert await OutboxSupport(sql).recent() == []


async def test_lag_counts_events_the_relay_has_not_picked_up_and_clears_once_delivered(
    sql: SqlStorage,
) -> None:
    async with receiver() as hook:
        endpoint, _ = await add_endpoint(sql, hook.url)
        order = await live(sql, at=datetime.now(UTC) - timedelta(minutes=2))
        before = await outbox_health(settings(), sql)
        assert [h.sink for h in before] == [endpoint.sink]
        assert 119 <= before[0].lag_seconds < 180
        relay = build_relay(settings(), sql)
        try:
            events = await committed_ids(sql, order.id)
            await relay_until(relay, lambda: len(hook.accepted) == len(events))
        finally:
            await relay.aclose()
    after = await outbox_health(settings(), sql)
    assert [(h.lag_seconds, h.dead_letters) for h in after] == [(0.0, 0)]
