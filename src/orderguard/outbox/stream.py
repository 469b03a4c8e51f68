"""The event stream: NATS JetStream, one subject per event type.

Each event is published to ``<prefix>.<event>`` (``orderguard.orders.paid``) with
``Nats-Msg-Id`` set to the event id, so a re-publish after a crash between publishing and
recording the delivery falls in JetStream's duplicate window and is dropped. The stream
(``<prefix>.>``) is created on first use when missing.
"""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from orderguard.domain.delivery import STREAM_SINK
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.domain.order import Order
from orderguard.outbox.sinks import DeliveryFailed, event_json


def subject_for(prefix: str, event_type: EventType) -> str:
    """``orderguard.orders.paid`` for ``order.paid`` under the prefix ``orderguard.orders``."""
    return f"{prefix}.{str(event_type).removeprefix('order.')}"


class StreamSink:
    """Publishes events to NATS JetStream."""

    name = STREAM_SINK
    events: frozenset[EventType] | None = None
    needs_order = False

    def __init__(self, url: str, *, stream: str, prefix: str, timeout_s: float) -> None:
        self.url, self.stream, self.prefix, self.timeout_s = url, stream, prefix, timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        #: Publishes JetStream dropped as duplicates (a re-send after a crash).
        self.duplicates = 0

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        js = await self._jetstream()
        try:
            ack = await js.publish(
                subject_for(self.prefix, event.type),
                event_json(event),
                timeout=self.timeout_s,
                stream=self.stream,
                headers={"Nats-Msg-Id": event.id},
            )
        except (NatsError, TimeoutError) as exc:
            raise DeliveryFailed(f"JetStream did not acknowledge {event.id}: {exc!r}") from exc
        if ack.duplicate:
            self.duplicates += 1

    async def _jetstream(self) -> JetStreamContext:
        async with self._connecting:  # deliveries run side by side; connect once
            if self._js is not None and self._nc is not None and self._nc.is_connected:
                return self._js
            return await self._connect()

    async def _connect(self) -> JetStreamContext:
        await self.aclose()
        try:
            self._nc = await nats.connect(
                self.url, connect_timeout=self.timeout_s, max_reconnect_attempts=1
            )
            js = self._nc.jetstream(timeout=self.timeout_s)
            await self._ensure_stream(js)
        except (NatsError, OSError, TimeoutError) as exc:
            await self.aclose()
            raise DeliveryFailed(f"cannot reach NATS at {self.url}: {exc!r}") from exc
        self._js = js
        return js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"]))

    async def aclose(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()
