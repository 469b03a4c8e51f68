"""``orderguard worker`` (and, unless ``--no-worker``, a task inside ``serve``).

Each round: say it is alive, run the janitor on due orders, apply webhooks whose
processing failed or was never finished, charge orders waiting for a
provider, expire abandoned authentications, send again refunds the provider never
answered and look up those still pending there (``services.refund_check``), cancel
abandoned orders; hourly, prune expired idempotency records and apply retention (old
delivered outbox rows, processed webhook bodies). Work on orders is leased, so workers can
run side by side on
PostgreSQL; on SQLite one worker runs (a second one finds a live heartbeat and steps aside).
SIGTERM ends the round in progress, releasing its leases (an order whose settling failed
keeps its lease until it runs out), and stops.

The outbox relay and the doctor's periodic checks are given by the composition root
(``bootstrap.new_worker``): the worker only calls them, so it does not import the
relay's sinks or the doctor and everything the doctor looks at.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from orderguard.container import Container
from orderguard.domain.states import OrderState
from orderguard.providers.base import ProviderError
from orderguard.services.abandon import cancel_abandoned
from orderguard.services.expiry import expire_abandoned
from orderguard.services.maintenance import prune_idempotency_records
from orderguard.services.retention import RetentionPolicy, prune_retained
from orderguard.services.waiting import charge_waiting
from orderguard.storage.errors import StorageError

log = logging.getLogger("orderguard.worker")
#: Seconds between pruning rounds.
PRUNE_EVERY_SECONDS = 3600.0
Duty = Callable[[], Awaitable[object]]


class OutboxDuty(Protocol):
    """The outbox relay as one worker's duty (``outbox.duty.RelayDuty``)."""

    async def run(self, stop: asyncio.Event | None = None) -> object:
        """One relay round."""
        ...

    async def aclose(self) -> None:
        """Close the sinks' connections."""
        ...


#: Builds the outbox duty of the worker whose id it is given (the owner of its leases).
OutboxDutyFor = Callable[[str], OutboxDuty]


def new_worker_id() -> str:
    """A name for this worker: host, process and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Runs the background duties against one database."""

    def __init__(
        self,
        container: Container,
        *,
        outbox: OutboxDutyFor,
        checks: Duty,
        checks_every: float,
        worker_id: str | None = None,
    ) -> None:
        """``checks`` runs every ``checks_every`` seconds (the doctor on this wiring)."""
        self.container = container
        self.id = worker_id or new_worker_id()
        self.rounds = 0
        self._started = container.clock()
        self._outbox = outbox(self.id)
        self._checks, self._checks_every = checks, checks_every

    async def run(self, stop: asyncio.Event) -> None:
        """Run every duty in its own loop until ``stop`` is set, so a slow one (a janitor
        waiting on a struggling provider) never holds up the others or the heartbeat.

        On SQLite, while another worker is alive this one stands by, and takes over once
        that worker's heartbeat goes stale.
        """
        if not await self._stand_by(stop):
            return
        log.info("worker %s started", self.id)
        loops = [
            asyncio.create_task(self._repeat(name, duty, every, stop))
            for name, duty, every in self._duties(stop)
        ]
        await asyncio.gather(*loops)
        await self._outbox.aclose()
        await self._forget()
        log.info("worker %s stopped after %d janitor rounds", self.id, self.rounds)

    async def round(self, stop: asyncio.Event | None = None) -> None:
        """Every duty once, one after the other (for tests and one-off runs)."""
        for name, duty, _ in self._duties(stop):
            await self._attempt(name, duty)
        await self._outbox.aclose()

    async def _repeat(self, name: str, duty: Duty, every: float, stop: asyncio.Event) -> None:
        """Run ``duty`` now and then every ``every`` seconds until stopped."""
        while not stop.is_set():
            await self._attempt(name, duty)
            await _wait(stop, every)

    async def _attempt(self, name: str, duty: Duty) -> None:
        """Run one duty; a failure is logged and the duty runs again next time."""
        try:
            await duty()
        except (StorageError, ProviderError) as exc:
            log.warning("%s failed, will retry: %s", name, exc)
        except Exception:
            log.exception("%s failed unexpectedly; the worker carries on", name)

    async def _stand_by(self, stop: asyncio.Event) -> bool:
        """Wait while another worker is alive on SQLite; ``False`` if stopped meanwhile."""
        announced = False
        while await self._another_is_alive():
            if not announced:
                log.warning(
                    "another worker is active on this SQLite database; %s stands by", self.id
                )
                announced = True
            if await _wait(stop, self.container.settings.worker_round_s):
                return False
        return not stop.is_set()

    def _duties(self, stop: asyncio.Event | None) -> list[tuple[str, Duty, float]]:
        """Each duty with how often it runs (seconds)."""
        c, s = self.container, self.container.settings
        duties: list[tuple[str, Duty]] = [
            ("heartbeat", self._beat),
            ("janitor", self._janitor_round(stop)),
            ("webhook inbox", lambda: c.inbox.process_due(owner=self.id)),
            ("outbox relay", lambda: self._outbox.run(stop)),
            (
                "waiting orders",
                lambda: charge_waiting(
                    c.storage, c.payments, concurrency=s.waiting_concurrency, stop=stop
                ),
            ),
            (
                "abandoned authentications",
                lambda: expire_abandoned(
                    c.storage,
                    c.payments,
                    c.recheck,
                    after=timedelta(minutes=s.action_expiry_minutes),
                ),
            ),
            ("pending refunds", c.operations.retry_refunds),
            ("refund lookups", lambda: c.refund_check.run_once(owner=self.id, stop=stop)),
            (
                "abandoned orders",
                lambda: cancel_abandoned(
                    c.storage,
                    state=OrderState.RECEIVED,
                    after=timedelta(hours=s.abandon_received_hours),
                ),
            ),
            (
                "abandoned declines",
                lambda: cancel_abandoned(
                    c.storage,
                    state=OrderState.PAYMENT_FAILED,
                    after=timedelta(hours=s.abandon_failed_hours),
                ),
            ),
        ]
        every_round = self.container.settings.worker_round_s
        return [(name, duty, every_round) for name, duty in duties] + [
            ("sweep", self._sweep, self.container.settings.sweep_every_s),
            ("prune", self._prune, PRUNE_EVERY_SECONDS),
            ("retention", lambda: self._retain(stop), PRUNE_EVERY_SECONDS),
            ("doctor checks", self._checks, self._checks_every),
        ]

    def _janitor_round(self, stop: asyncio.Event | None) -> Duty:
        async def run() -> None:
            await self.container.janitor.run_once(owner=self.id, stop=stop)
            self.rounds += 1

        return run

    async def _beat(self) -> None:
        async with self.container.storage() as uow:
            await uow.leases.beat(self.id, started_at=self._started, now=self.container.clock())
            await uow.commit()

    async def _prune(self) -> None:
        await prune_idempotency_records(
            self.container.storage, ttl=self.container.settings.idempotency_ttl
        )

    async def _retain(self, stop: asyncio.Event | None) -> None:
        c, s = self.container, self.container.settings
        policy = RetentionPolicy(
            outbox=s.outbox_retention,
            webhook_bodies=s.webhook_body_retention,
            batch=s.retention_batch,
        )
        await prune_retained(c.storage, policy, clock=c.clock, stop=stop)

    async def _sweep(self) -> None:
        window = timedelta(hours=self.container.settings.sweep_window_hours)
        await self.container.sweeper.sweep_last(window)

    async def _forget(self) -> None:
        try:
            async with self.container.storage() as uow:
                await uow.leases.forget(self.id)
                await uow.commit()
        except StorageError as exc:
            log.warning("could not remove the heartbeat of %s: %s", self.id, exc)

    async def _another_is_alive(self) -> bool:
        if not self.container.settings.database_url.startswith("sqlite"):
            return False
        async with self.container.storage() as uow:
            seen = await uow.leases.last_beat(other_than=self.id)
        horizon = timedelta(seconds=3 * self.container.settings.worker_round_s + 5)
        return seen is not None and self.container.clock() - seen < horizon


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; ``True`` when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
