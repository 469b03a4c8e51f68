"""The relay: delivers committed outbox events to every configured sink (G8).

Each round, for each sink: copy new events into its deliveries, then claim due ones with
a lease and hand them over, at most one per order at a time, so an order's events arrive
in the order they were committed. A failure is retried with exponential backoff and
jitter; after ``max_attempts`` the delivery is a dead letter that support can replay.
Sinks are independent: one failing neither blocks the others nor re-sends to them.

Delivery is at least once: a relay that dies after a sink accepted an event but before
recording it leaves a lease that expires, and the event is sent again (with the same id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from orderguard.domain.delivery import (
    Delivery,
    DeliveryAttempt,
    Outcome,
    next_after_failure,
    retry_delay,
)
from orderguard.domain.order import Order
from orderguard.outbox.sinks import Sink
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.outbox")


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """How the relay retries, leases and batches."""

    #: Tries before a delivery becomes a dead letter.
    max_attempts: int = 10
    #: First retry wait (doubled each time, with jitter) and the longest wait, in seconds.
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 3600.0
    #: How long a relay holds a claimed delivery; a dead relay's claims expire after it.
    lease_s: float = 60.0
    #: Deliveries claimed at once per sink, and how many are in flight together.
    batch: int = 100
    concurrency: int = 10
    #: A sink seen for the first time receives events committed this long before.
    backfill: timedelta = timedelta(hours=1)
    #: Claim rounds per sink per :meth:`Relay.run_once` (later events of an order wait for
    #: earlier ones, so one round delivers one event per order).
    passes: int = 20


class SinkSource(Protocol):
    """The sinks configured right now (merchant endpoints change while the relay runs)."""

    async def current(self) -> list[Sink]:
        """Every sink switched on."""

    async def aclose(self) -> None:
        """Release the sinks' connections."""


@dataclass
class RelayReport:
    """What one round did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    per_sink: dict[str, int] = field(default_factory=dict)


class Relay:
    """Delivers outbox events to sinks; each step of its bookkeeping is one unit of work on
    ``storage`` (``uow.outbox``), so a relay dying anywhere leaves only leases that expire."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        sinks: SinkSource,
        *,
        policy: RelayPolicy | None = None,
        clock: Clock = system_clock,
        rng: random.Random | None = None,
    ) -> None:
        self.storage, self.sinks = storage, sinks
        self.policy = policy or RelayPolicy()
        self._clock, self._rng = clock, rng or random.Random()

    async def run_once(self, *, owner: str, stop: asyncio.Event | None = None) -> RelayReport:
        """Deliver what is due to every sink; sinks run side by side."""
        report = RelayReport()
        sinks = await self.sinks.current()
        await asyncio.gather(*(self._sink_round(s, owner, report, stop) for s in sinks))
        return report

    async def _sink_round(
        self, sink: Sink, owner: str, report: RelayReport, stop: asyncio.Event | None
    ) -> None:
        now = self._clock()
        async with self.storage() as uow:
            await uow.outbox.enqueue(
                sink.name,
                types=sink.events,
                since=now - self.policy.backfill,
                now=now,
                batch=self.policy.batch * 10,
            )
            await uow.commit()
        for _ in range(self.policy.passes):
            if stop is not None and stop.is_set():
                return
            async with self.storage() as uow:
                claimed = await uow.outbox.claim(
                    sink.name,
                    owner=owner,
                    now=self._clock(),
                    until=self._clock() + timedelta(seconds=self.policy.lease_s),
                    limit=self.policy.batch,
                )
                await uow.commit()
            if not claimed or not await self._deliver_all(sink, claimed, owner, report):
                return  # nothing due, or only failures (retried in a later round)

    async def _deliver_all(
        self, sink: Sink, claimed: list[Delivery], owner: str, report: RelayReport
    ) -> int:
        """Deliver ``claimed`` side by side (one per order); how many were delivered."""
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def one(delivery: Delivery) -> None:
            async with gate:
                outcome = await self.deliver(sink, delivery, owner=owner)
            report.per_sink[sink.name] = report.per_sink.get(sink.name, 0) + 1
            if outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif outcome is Outcome.FAILED:
                report.failed += 1
            else:
                report.dead += 1

        before = report.delivered
        await asyncio.gather(*(one(d) for d in claimed))
        return report.delivered - before

    async def deliver(self, sink: Sink, delivery: Delivery, *, owner: str) -> Outcome:
        """Try one claimed delivery and record how it went."""
        started, error = time.monotonic(), None
        try:
            order = await self._order(delivery) if sink.needs_order else None
            await asyncio.wait_for(
                sink.deliver(delivery.event, order), timeout=self.policy.lease_s / 2
            )
        except Exception as exc:  # any failure of a sink is recorded and retried
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = delivery.attempts + 1
        now = self._clock()
        retry_at = None
        if error is not None:
            delay = retry_delay(
                attempts,
                base_s=self.policy.backoff_base_s,
                cap_s=self.policy.backoff_cap_s,
                rng=self._rng,
            )
            retry_at = next_after_failure(
                attempts, max_attempts=self.policy.max_attempts, now=now, delay=delay
            )
        outcome = (
            Outcome.DELIVERED
            if error is None
            else (Outcome.FAILED if retry_at is not None else Outcome.DEAD)
        )
        attempt = DeliveryAttempt(
            event_id=delivery.event.id,
            sink=sink.name,
            at=now,
            outcome=outcome,
            error=error,
            relay=owner,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        async with self.storage() as uow:
            if error is None:
                await uow.outbox.delivered(delivery, attempt=attempt)
            else:
                await uow.outbox.failed(delivery, attempt=attempt, retry_at=retry_at)
            await uow.commit()
        if error is not None:
            log.warning(
                "outbox: %s of %s to %s failed (attempt %d, %s): %s",
                delivery.event.type,
                delivery.event.order_id,
                sink.name,
                attempts,
                "dead letter" if retry_at is None else f"retry at {retry_at.isoformat()}",
                error,
            )
        return outcome

    async def _order(self, delivery: Delivery) -> Order | None:
        async with self.storage.reader() as uow:
            return await uow.orders.get(delivery.event.order_id)

    async def aclose(self) -> None:
        """Close the sinks' connections."""
        await self.sinks.aclose()
