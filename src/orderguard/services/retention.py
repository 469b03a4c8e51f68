"""Retention: what the outbox and the webhook inbox no longer need goes, in short batches.

Delivered outbox deliveries (with their attempts), and events every sink is done with, are
deleted once older than the outbox retention; processed webhook events lose their body and
headers after the webhook retention, but keep their row: its (provider, event id) is what
refuses a provider's late duplicate. Orders, payment attempts, the timeline and refunds are
never deleted (the database refuses it for orders and the timeline).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.retention")
#: The shortest retention accepted: support needs at least yesterday's trail.
MIN_RETENTION = timedelta(days=1)


class RetentionTooShort(ValueError):
    """A retention is shorter than a day."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of row is kept (``None``: forever), and the batch size."""

    outbox: timedelta | None
    webhook_bodies: timedelta | None
    #: Rows one statement touches at most: each batch is its own short transaction.
    batch: int = 1000

    def __post_init__(self) -> None:
        for kept in (self.outbox, self.webhook_bodies):
            if kept is not None and kept < MIN_RETENTION:
                raise RetentionTooShort(f"a retention of {kept} is shorter than {MIN_RETENTION}")
        if self.batch < 1:
            raise ValueError("a retention batch holds at least one row")


@dataclass(frozen=True, slots=True)
class Pruned:
    """What retention removed (or, for a dry run, would remove)."""

    #: Delivered outbox deliveries deleted, with their attempts.
    deliveries: int = 0
    #: Outbox events deleted.
    events: int = 0
    #: Processed webhook events whose body and headers were cleared.
    webhook_bodies: int = 0


async def prune_retained(
    storage: UnitOfWorkFactory,
    policy: RetentionPolicy,
    *,
    clock: Clock = system_clock,
    stop: asyncio.Event | None = None,
) -> Pruned:
    """Apply ``policy`` batch after batch until nothing is left or ``stop`` is set."""
    now = clock()
    deliveries = events = bodies = 0
    if policy.outbox is not None:
        deliveries, events = await _prune_outbox(storage, now - policy.outbox, policy.batch, stop)
    if policy.webhook_bodies is not None:
        bodies = await _prune_bodies(storage, now - policy.webhook_bodies, now, policy.batch, stop)
    pruned = Pruned(deliveries=deliveries, events=events, webhook_bodies=bodies)
    if pruned != Pruned():
        log.info(
            "retention deleted %d outbox deliveries and %d outbox events, cleared %d "
            "webhook bodies",
            deliveries,
            events,
            bodies,
        )
    return pruned


async def count_retained(
    storage: UnitOfWorkFactory, policy: RetentionPolicy, *, clock: Clock = system_clock
) -> Pruned:
    """What :func:`prune_retained` would remove now (nothing is changed)."""
    now = clock()
    async with storage.reader() as uow:
        outbox = await uow.outbox.prunable(now - policy.outbox) if policy.outbox else None
        bodies = (
            await uow.webhooks.prunable_bodies(now - policy.webhook_bodies)
            if policy.webhook_bodies
            else 0
        )
    return Pruned(
        deliveries=outbox.deliveries if outbox else 0,
        events=outbox.events if outbox else 0,
        webhook_bodies=bodies,
    )


async def _prune_outbox(
    storage: UnitOfWorkFactory, before: datetime, batch: int, stop: asyncio.Event | None
) -> tuple[int, int]:
    """Finished deliveries and their events, then the events left without any."""
    deliveries = events = 0
    while not _stopped(stop):
        async with storage() as uow:
            done = await uow.outbox.prune(before, limit=batch)
            await uow.commit()
        deliveries, events = deliveries + done.deliveries, events + done.events
        if done.deliveries < batch:
            break
    return deliveries, events + await _prune_leftover_events(storage, before, batch, stop)


async def _prune_leftover_events(
    storage: UnitOfWorkFactory, before: datetime, batch: int, stop: asyncio.Event | None
) -> int:
    """Events no delivery points to any more (or never did), in commit order; one pass
    over the old events still there, which are few once their deliveries have gone."""
    deleted, after = 0, 0
    while not _stopped(stop):
        async with storage() as uow:
            swept = await uow.outbox.prune_events(before, after_seq=after, limit=batch)
            await uow.commit()
        deleted += swept.deleted
        if swept.last_seq is None:
            break
        after = swept.last_seq
    return deleted


def _stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def _prune_bodies(
    storage: UnitOfWorkFactory,
    before: datetime,
    now: datetime,
    batch: int,
    stop: asyncio.Event | None,
) -> int:
    cleared = 0
    while not _stopped(stop):
        async with storage() as uow:
            done = await uow.webhooks.prune_bodies(before, at=now, limit=batch)
            await uow.commit()
        cleared += done
        if done < batch:
            break
    return cleared
