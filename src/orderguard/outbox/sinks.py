"""What a sink is: a named place events are delivered to, at least once."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from orderguard.domain.events import EventType, OutboxEvent
from orderguard.domain.order import Order


class DeliveryFailed(Exception):
    """The sink did not accept the event; it is tried again later."""


class SinkMisconfigured(ValueError):
    """A sink's setting cannot work (the relay is not started; the CLI says so and stops)."""


class Sink(Protocol):
    """A destination for outbox events."""

    #: The name deliveries are recorded under (``email``, ``stream``, ``webhook:<id>``).
    name: str
    #: The event types it receives (None: every type).
    events: frozenset[EventType] | None
    #: Whether :meth:`deliver` needs the order (loaded by the relay).
    needs_order: bool

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        """Hand the event over; raises :class:`DeliveryFailed` (or any error) if it was not
        accepted."""

    async def aclose(self) -> None:
        """Release connections."""


def event_document(event: OutboxEvent) -> dict[str, Any]:
    """The JSON every sink outside orderguard receives; ``id`` is stable for de-duplication."""
    return {
        "id": event.id,
        "type": str(event.type),
        "timestamp": event.at,
        "data": {"order_id": event.order_id, **event.payload},
    }


def event_json(event: OutboxEvent) -> bytes:
    """:func:`event_document` as bytes."""
    return orjson.dumps(event_document(event))
