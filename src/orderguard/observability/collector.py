"""Gauges that describe the database, computed when ``/metrics`` is scraped.

Whichever process serves the scrape reads the same database, so these are right in any
process and never need multi-process files. A reading is cached for ``ttl`` seconds so a
burst of scrapes (several Prometheus servers, a dashboard) costs one set of queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from orderguard.domain.states import OrderState
from orderguard.domain.stuck import STUCK_AFTER
from orderguard.observability.hooks import OutboxStats, ReconciliationStats
from orderguard.observability.shared_gauges import SharedGauges
from orderguard.storage.ports import OPEN_STATES, DatabaseStats, OpsStats

#: How long an order waits unchanged before it is stuck, in minutes (for the help text).
STUCK_MINUTES = int(STUCK_AFTER.total_seconds() // 60)
#: Seconds a database reading is reused.
DEFAULT_TTL_S = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading: the database, the outbox relay and reconciliation."""

    stats: DatabaseStats
    outbox_lag_s: float | None
    dead_letters: dict[str, int] | None
    reconciliation: dict[str, int] | None
    #: Open reconciliation exceptions per category (None: not tracked).
    open_reconciliation: dict[str, int] | None = None


class DatabaseCollector(Collector):
    """A collector over the latest :class:`Reading`; :meth:`refresh` takes a new one."""

    def __init__(
        self,
        stats: OpsStats,
        *,
        watched: frozenset[OrderState],
        shortest_wait: timedelta,
        outbox: OutboxStats,
        reconciliation: ReconciliationStats,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        shared: Path | None = None,
    ) -> None:
        self._stats = stats
        self._watched = watched
        self._shortest_wait = shortest_wait
        self._outbox = outbox
        self._reconciliation = reconciliation
        self._ttl_s = ttl_s
        self._clock = clock
        self._reading: Reading | None = None
        self._taken = float("-inf")
        self._lock = asyncio.Lock()
        self._registry = CollectorRegistry()
        self._registry.register(self)
        self._shared = SharedGauges(shared, ttl_s=ttl_s, clock=clock) if shared else None

    async def refresh(self, now: datetime) -> Reading:
        """The cached reading, or a new one when it is older than the ttl.

        Concurrent callers wait for the one refresh under way and share its reading, so a
        burst of scrapes costs one reading. The database, the outbox relay's records and
        reconciliation's counts are read at once (on separate connections).
        """
        async with self._lock:
            if self._reading is None or self._clock() - self._taken >= self._ttl_s:
                await self._take(now)
            assert self._reading is not None
            return self._reading

    async def _take(self, now: datetime) -> None:
        stats, (lag, dead), (found, still_open) = await asyncio.gather(
            self._stats.read(now=now, watched=self._watched, shortest_wait=self._shortest_wait),
            self._outbox.delivery(now),
            self._reconciliation.exception_counts(),
        )
        self._reading = Reading(stats, lag, dead, found, still_open)
        self._taken = self._clock()

    async def text(self, now: datetime) -> bytes:
        """The exposition text of a fresh (or cached) reading: this process's, or, with a
        shared folder, the one reading of every process sharing it."""
        if self._shared is not None:
            try:
                return await self._shared_text(now, self._shared)
            except OSError as exc:  # the folder is unusable: this process reads alone
                log.warning("metrics: the shared gauges' folder is unusable: %s", exc)
        await self.refresh(now)
        return generate_latest(self._registry)

    async def _shared_text(self, now: datetime, shared: SharedGauges) -> bytes:
        async with self._lock:
            text = shared.fresh()
            if text is not None:
                return text
            async with shared.refreshing():
                text = shared.fresh()  # another process may have refreshed it meanwhile
                if text is None:
                    await self._take(now)
                    text = generate_latest(self._registry)
                    shared.store(text, taken=self._taken)
            return text

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self._reading is None:
            return
        yield from families(self._reading)


def families(reading: Reading) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The metric families of one reading."""
    s = reading.stats
    orders = GaugeMetricFamily("orderguard_orders", "Orders by state.", labels=["state"])
    for state in OrderState:
        orders.add_metric([str(state)], s.orders_by_state.get(str(state), 0))
    yield orders

    by_age = GaugeMetricFamily(
        "orderguard_open_orders",
        "Unfinished orders by state and age (since they were placed).",
        labels=["state", "age"],
    )
    oldest = GaugeMetricFamily(
        "orderguard_oldest_open_order_age_seconds",
        "Age of the oldest unfinished order not in the review queue, per state (0: none).",
        labels=["state"],
    )
    for state in OPEN_STATES:
        for label, count in s.open_by_age.get(str(state), {}).items():
            by_age.add_metric([str(state), label], count)
        first = s.oldest_open.get(str(state))
        oldest.add_metric([str(state)], (s.now - first).total_seconds() if first else 0.0)
    yield by_age
    yield oldest
    stuck = GaugeMetricFamily(
        "orderguard_stuck_orders",
        f"Stuck orders (waiting on the provider, unchanged for {STUCK_MINUTES} minutes), by state.",
        labels=["state"],
    )
    for stuck_state, count in sorted(s.stuck_by_state.items()):
        stuck.add_metric([stuck_state], count)
    yield stuck

    flagged = GaugeMetricFamily(
        "orderguard_flagged_orders", "Orders in the review queue by reason.", labels=["reason"]
    )
    for reason, count in sorted(s.flagged_by_reason.items()):
        flagged.add_metric([reason[:120]], count)
    yield flagged
    yield GaugeMetricFamily(
        "orderguard_janitor_backlog", "Orders whose recheck is due now.", value=s.janitor_backlog
    )
    yield GaugeMetricFamily(
        "orderguard_janitor_lag_seconds",
        "How long the most overdue recheck has been due (0: none overdue).",
        value=s.janitor_lag.total_seconds(),
    )
    yield from _webhook_families(s)
    heartbeat = GaugeMetricFamily(
        "orderguard_worker_heartbeat_age_seconds",
        "Seconds since a worker last said it was alive (absent: no worker ever ran).",
    )
    if s.last_heartbeat is not None:
        heartbeat.add_metric([], max((s.now - s.last_heartbeat).total_seconds(), 0.0))
    yield heartbeat
    yield from _hook_families(reading)


def _webhook_families(s: DatabaseStats) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    counters = {
        "received": CounterMetricFamily(
            "orderguard_webhooks_received",
            "Webhook deliveries stored in the inbox (duplicates not counted).",
            labels=["provider"],
        ),
        "processed": CounterMetricFamily(
            "orderguard_webhooks_processed", "Webhook events applied.", labels=["provider"]
        ),
        "failures": CounterMetricFamily(
            "orderguard_webhooks_failures",
            "Failed attempts to apply a webhook event (each retry counts).",
            labels=["provider"],
        ),
    }
    failing = GaugeMetricFamily(
        "orderguard_webhooks_failing",
        "Webhook events whose last attempt failed and that are not applied yet.",
        labels=["provider"],
    )
    waiting = GaugeMetricFamily(
        "orderguard_webhook_oldest_unprocessed_age_seconds",
        "Age of the oldest webhook event not applied yet (0: none).",
        labels=["provider"],
    )
    for provider, t in sorted(s.webhooks.items()):
        counters["received"].add_metric([provider], t.received)
        counters["processed"].add_metric([provider], t.processed)
        counters["failures"].add_metric([provider], t.failures)
        failing.add_metric([provider], t.failing)
        age = (s.now - t.oldest_unprocessed).total_seconds() if t.oldest_unprocessed else 0.0
        waiting.add_metric([provider], max(age, 0.0))
    yield from counters.values()
    yield failing
    yield waiting


def _hook_families(reading: Reading) -> Iterator[GaugeMetricFamily]:
    if reading.outbox_lag_s is not None:
        yield GaugeMetricFamily(
            "orderguard_outbox_lag_seconds",
            "Age of the oldest outbox event not yet delivered to every sink (0: none).",
            value=reading.outbox_lag_s,
        )
    if reading.dead_letters is not None:
        dead = GaugeMetricFamily(
            "orderguard_outbox_dead_letters", "Outbox events given up on, by sink.", labels=["sink"]
        )
        for sink, count in sorted(reading.dead_letters.items()):
            dead.add_metric([sink], count)
        yield dead
    for name, description, counts in (
        (
            "orderguard_reconciliation_exceptions",
            "Exceptions recorded by applied reconciliation runs, by category (the count never "
            "goes down).",
            reading.reconciliation,
        ),
        (
            "orderguard_reconciliation_exceptions_open",
            "Reconciliation exceptions no later run has explained, by category (what the "
            "console's reconciliation queue lists).",
            reading.open_reconciliation,
        ),
    ):
        if counts is not None:
            found = GaugeMetricFamily(name, description, labels=["category"])
            for category, count in sorted(counts.items()):
                found.add_metric([category], count)
            yield found


def database_up_text(up: bool) -> bytes:
    """``orderguard_database_up``: whether this scrape could read the database."""
    return _UP_TEXT[up]


class _Up(Collector):
    def __init__(self, up: bool) -> None:
        self._up = up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "orderguard_database_up",
            "1 when this scrape read the database, 0 when it could not.",
            value=1.0 if self._up else 0.0,
        )


def _up_text(up: bool) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Up(up))
    return generate_latest(registry)


#: Both answers, rendered once.
_UP_TEXT = {True: _up_text(True), False: _up_text(False)}
