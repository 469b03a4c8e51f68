"""What support and operations ask of the outbox: dead letters, an order's deliveries,
sending an event again, and how far behind each sink is (outbox lag, for metrics).

Everything goes through a unit of work (``uow.outbox``, ``uow.endpoints``), on SQL or in
memory alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from orderguard.domain.delivery import (
    EMAIL_SINK,
    EMAILED_EVENTS,
    STREAM_SINK,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
)
from orderguard.domain.events import EventType
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory


class SinkSettings(Protocol):
    """Which sinks are switched on and how far back they catch up: what the outbox reads
    of the settings (``config.Settings`` is one; bootstrap and the CLI hand it over)."""

    @property
    def smtp_url(self) -> str | None:
        """Email is on when set."""

    @property
    def nats_url(self) -> str | None:
        """The stream is on when set."""

    @property
    def outbox_backfill_hours(self) -> float:
        """How far back a sink switched on later catches up."""


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """How one configured sink is doing."""

    sink: str
    #: Age of the oldest event not yet delivered (nor dead) there; 0 when none waits.
    lag_seconds: float
    oldest_undelivered_at: datetime | None
    #: Events not yet delivered (nor dead) there, whether the relay picked them up or not.
    undelivered: int
    #: Events given up on at this sink, waiting for support to replay them.
    dead_letters: int


@dataclass(frozen=True, slots=True)
class EventDeliveries:
    """One event at every sink, with every attempt."""

    deliveries: list[Delivery]
    attempts: list[DeliveryAttempt]


async def configured_sinks(
    settings: SinkSettings, storage: UnitOfWorkFactory
) -> dict[str, frozenset[EventType] | None]:
    """The sinks switched on now, each with the event types it receives (None: all)."""
    async with storage.reader() as uow:
        return await _sinks(settings, uow)


async def _sinks(settings: SinkSettings, uow: UnitOfWork) -> dict[str, frozenset[EventType] | None]:
    sinks: dict[str, frozenset[EventType] | None] = {}
    if settings.smtp_url:
        sinks[EMAIL_SINK] = EMAILED_EVENTS
    if settings.nats_url:
        sinks[STREAM_SINK] = None
    for endpoint in await uow.endpoints.active():
        sinks[endpoint.sink] = None
    return sinks


async def outbox_health(
    settings: SinkSettings, storage: UnitOfWorkFactory, *, now: datetime | None = None
) -> list[SinkHealth]:
    """Lag and dead letters of every configured sink (empty when none is configured).

    Counts events the relay has not picked up yet, so a stopped relay shows as lag.
    """
    now = now or system_clock()
    since = now - timedelta(hours=settings.outbox_backfill_hours)
    health = []
    async with storage.reader() as uow:  # one transaction: the sinks and their records
        sinks = await _sinks(settings, uow)
        dead = await uow.outbox.dead_counts()
        for sink, types in sinks.items():
            waiting = await uow.outbox.undelivered(sink, types=types, since=since)
            oldest = waiting.oldest
            lag = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            health.append(SinkHealth(sink, lag, oldest, waiting.count, dead.get(sink, 0)))
    return health


class OutboxSupport:
    """The outbox as support sees it."""

    def __init__(self, storage: UnitOfWorkFactory, *, clock: Clock = system_clock) -> None:
        self.storage = storage
        self._clock = clock

    async def dead_letters(self, *, sink: str | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries given up on, newest event first."""
        async with self.storage.reader() as uow:
            return await uow.outbox.deliveries(state=DeliveryState.DEAD, sink=sink, limit=limit)

    async def recent(self, *, sink: str | None = None, limit: int = 100) -> list[Delivery]:
        """The latest deliveries in any state, newest event first."""
        async with self.storage.reader() as uow:
            return await uow.outbox.deliveries(sink=sink, limit=limit)

    async def deliveries_of_order(self, order_id: str) -> list[Delivery]:
        """Every event of the order at every sink, newest event first."""
        async with self.storage.reader() as uow:
            return await uow.outbox.deliveries(order_id=order_id, limit=10_000)

    async def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by its id (what the console's dead-letter page names)."""
        async with self.storage.reader() as uow:
            return await uow.outbox.delivery(delivery_id)

    async def event(self, event_id: str) -> EventDeliveries:
        """One event's deliveries and every attempt at them."""
        async with self.storage.reader() as uow:
            deliveries = await uow.outbox.deliveries(event_id=event_id, limit=10_000)
            return EventDeliveries(deliveries, await uow.outbox.attempts(event_id))

    async def replay_event(self, event_id: str, *, sink: str | None = None) -> int:
        """Send an event again: its dead deliveries, or (with ``sink``) to that sink
        whatever happened before; how many deliveries will be tried."""
        async with self.storage() as uow:
            if await uow.outbox.event(event_id) is None:
                raise UnknownEvent(event_id)
            count = await uow.outbox.replay(now=self._clock(), event_id=event_id, sink=sink)
            await uow.commit()
        return count

    async def replay_dead(self, *, sink: str | None = None) -> int:
        """Try every dead letter (of ``sink``, or everywhere) again; how many."""
        async with self.storage() as uow:
            count = await uow.outbox.replay(now=self._clock(), sink=sink)
            await uow.commit()
        return count


class UnknownEvent(LookupError):
    """No outbox event has this id."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"no outbox event {event_id!r}")
