"""Which outbox and reconciliation readers ``/metrics``, ``doctor`` and the worker use.

:func:`outbox_stats` reads the relay's per-sink delivery records;
:func:`reconciliation_stats` the exceptions applied reconciliation runs recorded. Both go
through the storage's unit of work, so they read SQL and in-memory storage alike.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orderguard.config import Settings
from orderguard.container import Container
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.hooks import (
    OutboxStats,
    ReconciliationStats,
    RecordedExceptionCounts,
    RelayOutbox,
)
from orderguard.observability.metrics import MULTIPROC_DIR
from orderguard.storage.ports import UnitOfWorkFactory


def outbox_stats(storage: UnitOfWorkFactory, settings: Settings) -> OutboxStats:
    """The outbox relay's delivery records in ``storage``, for the sinks ``settings`` switch
    on."""
    return RelayOutbox(settings, storage)


def reconciliation_stats(storage: UnitOfWorkFactory) -> ReconciliationStats:
    """The reconciliation exceptions recorded in ``storage``."""
    return RecordedExceptionCounts(storage)


def container_outbox_stats(container: Container) -> OutboxStats:
    """The outbox reader for the container's storage."""
    return outbox_stats(container.storage, container.settings)


def database_collector(container: Container) -> DatabaseCollector:
    """A collector over the container's storage (SQL or in-memory)."""
    schedule = container.janitor.schedule
    return DatabaseCollector(
        container.storage.stats,
        watched=schedule.watched,
        shortest_wait=schedule.shortest_wait if schedule.watched else timedelta(0),
        outbox=container_outbox_stats(container),
        reconciliation=reconciliation_stats(container.storage),
        ttl_s=container.settings.metrics_cache_s,
        shared=Path(MULTIPROC_DIR) if MULTIPROC_DIR else None,
    )
