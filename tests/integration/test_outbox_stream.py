"""The event stream against real NATS JetStream on 127.0.0.1:4222: events arrive on
``<prefix>.<event>`` with ``Nats-Msg-Id``; a relay killed between publishing and recording
the delivery re-publishes, and JetStream drops the duplicate. Each test uses its own stream
and subject prefix, and deletes them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from orderguard.domain.delivery import STREAM_SINK, Delivery, Outcome
from orderguard.domain.events import OutboxEvent
from orderguard.domain.order import Order
from orderguard.outbox.configured import ConfiguredSinks, build_relay, policy_from
from orderguard.outbox.relay import Relay
from orderguard.outbox.sinks import Sink
from orderguard.outbox.stream import StreamSink
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.nats_kit import Stream, nats_stream  # noqa: F401 (a fixture)
from tests.outbox_kit import (  # noqa: F401 (sql is a fixture)
    CANCELLED_LIFE,
    committed_ids,
    live,
    relay_until,
    settings,
    sql_storage,
)

pytestmark = pytest.mark.nats


async def delivered(sql: SqlStorage) -> list[Delivery]:
    return [d for d in await OutboxSupport(sql).recent(limit=1000) if d.state == "delivered"]


async def test_events_arrive_on_their_subjects_with_the_event_id_as_message_id(
    sql: SqlStorage, stream: Stream
) -> None:
    orders = [await live(sql), await live(sql, life=CANCELLED_LIFE, locale="zh-CN")]
    async with sql.reader() as uow:
        events = [e for o in orders for e in await uow.orders.events(o.id)]
    relay = build_relay(stream.settings(), sql)
    try:
        for _ in range(20):
            await relay.run_once(owner="relay-test")
            if len(await delivered(sql)) == len(events):
                break
    finally:
        await relay.aclose()
    messages = await stream.messages()  # the stream was created by the relay
    assert [m[1]["Nats-Msg-Id"] for m in messages] == [m[2]["id"] for m in messages]
    by_order: dict[str, list[str]] = {}
    for subject, _, document in messages:
        data = document["data"]
        assert isinstance(data, dict)
        assert subject == f"{stream.prefix}.{str(document['type']).removeprefix('order.')}"
        by_order.setdefault(str(data["order_id"]), []).append(str(document["id"]))
    assert by_order == {o.id: [e.id for e in events if e.order_id == o.id] for o in orders}


class Killed(BaseException):
    """The relay's process died here."""


class DiesAfterPublishing:
    """The configured sinks, each wrapped so that the relay's process dies after the sink
    accepted an event, before the delivery is recorded."""

    def __init__(self, sinks: ConfiguredSinks) -> None:
        self.sinks = sinks

    async def current(self) -> list[Sink]:
        return [_Dying(sink) for sink in await self.sinks.current()]

    async def aclose(self) -> None:
        await self.sinks.aclose()


class _Dying:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.name, self.events, self.needs_order = sink.name, sink.events, sink.needs_order

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        await self.sink.deliver(event, order)
        raise Killed

    async def aclose(self) -> None:
        await self.sink.aclose()


async def test_a_relay_killed_after_publishing_is_replaced_and_jetstream_drops_the_copy(
    sql: SqlStorage, stream: Stream
) -> None:
    order = await live(sql, life=())
    (event_id,) = await committed_ids(sql, order.id)
    config = stream.settings(outbox_lease_s="0.5")
    first_sinks = DiesAfterPublishing(ConfiguredSinks(config, sql, clock=_now))
    first = Relay(sql, first_sinks, policy=policy_from(config))
    with pytest.raises(Killed):
        await first.run_once(owner="relay-1")
    await first.aclose()
    assert [m[2]["id"] for m in await stream.messages()] == [event_id]
    (pending,) = await OutboxSupport(sql).deliveries_of_order(order.id)
    assert pending.state == "pending" and pending.attempts == 0  # nothing recorded

    second = build_relay(config, sql)
    sink = next(s for s in await second.sinks.current() if s.name == STREAM_SINK)
    assert isinstance(sink, StreamSink)
    try:
        for _ in range(40):  # until relay-1's lease has expired
            await second.run_once(owner="relay-2")
            if await delivered(sql):
                break
            await _sleep(0.05)
    finally:
        await second.aclose()
    assert sink.duplicates == 1  # re-published, and JetStream said it was a duplicate
    assert [m[2]["id"] for m in await stream.messages()] == [event_id]  # still one message
    attempts = (await OutboxSupport(sql).event(event_id)).attempts
    assert [(a.relay, a.outcome) for a in attempts] == [("relay-2", Outcome.DELIVERED)]


async def test_an_unreachable_nats_is_a_failure_retried_later_not_a_loss(sql: SqlStorage) -> None:
    from orderguard.api.server import free_port

    order = await live(sql, life=())
    config = settings(nats_url=f"nats://127.0.0.1:{free_port()}", outbox_timeout_s="0.5")
    relay = build_relay(config, sql)
    try:
        await relay.run_once(owner="relay-test")
    finally:
        await relay.aclose()
    (delivery,) = await OutboxSupport(sql).deliveries_of_order(order.id)
    assert delivery.state == "pending" and delivery.attempts == 1
    assert delivery.last_error and "cannot reach NATS" in delivery.last_error


def _now() -> datetime:
    return datetime.now(UTC)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)
