"""The event stream: NATS JetStream, one subject per event type.

Each event is published to ``<prefix>.<event>`` (``orderguard.orders.paid``) with
``Nats-Msg-Id`` set to the event id, so a re-publish after a crash between publishing and
recording the delivery falls in JetStream's duplicate window and is dropped. The stream
(``<prefix>.>``) is created on first use when missing.
"""

from __future__ import annotations

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

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        js = await self._jetstream()
        try:
            await js.publish(
                subject_for(self.prefix, event.type),
                event_json(event),
                timeout=self.timeout_s,
                stream=self.stream,
                headers={"Nats-Msg-Id": event.id},
            )
        except (NatsError, TimeoutError) as exc:
            raise DeliveryFailed(f"JetStream did not acknowledge {event.id}: {exc!r}") from exc

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self.aclose()
        try:
            self._nc = await nats.connect(
                self.url, connect_timeout=self.timeout_s, max_reconnect_attempts=1
            )
            self._js = self._nc.jetstream(timeout=self.timeout_s)
            await self._ensure_stream(self._js)
        except (NatsError, OSError, TimeoutError) as exc:
            await self.aclose()
            raise DeliveryFailed(f"cannot reach NATS at {self.url}: {exc!r}") from exc
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"]))

    async def aclose(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()
