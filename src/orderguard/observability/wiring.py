"""Which outbox and reconciliation readers ``/metrics``, ``doctor`` and the worker use.

:func:`outbox_stats` reads the relay's per-sink delivery records;
:func:`reconciliation_stats` the exceptions applied reconciliation runs recorded.
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.bootstrap import Container
from orderguard.config import Settings
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.hooks import (
    OutboxStats,
    ReconciliationStats,
    RecordedExceptionCounts,
    RelayOutbox,
    UnrecordedExceptions,
    UntrackedOutbox,
)
from orderguard.storage.database import Database
from orderguard.storage.unit_of_work import sql_database as _sql_database


def outbox_stats(db: Database, settings: Settings) -> OutboxStats:
    """The outbox relay's delivery records on ``db``, for the sinks ``settings`` switch on."""
    return RelayOutbox(settings, db)


def reconciliation_stats(db: Database) -> ReconciliationStats:
    """The reconciliation exceptions reader for ``db``."""
    return RecordedExceptionCounts(db)


def sql_database(container: Container) -> Database | None:
    """The container's SQL database, ``None`` on in-memory storage: only for the outbox's
    and reconciliation's readers, which have no storage port yet."""
    return _sql_database(container.storage)


def container_outbox_stats(container: Container) -> OutboxStats:
    """The outbox reader for the container's storage (untracked where it keeps none)."""
    db = sql_database(container)
    return outbox_stats(db, container.settings) if db is not None else UntrackedOutbox()


def database_collector(container: Container) -> DatabaseCollector:
    """A collector over the container's storage (SQL or in-memory)."""
    db = sql_database(container)
    schedule = container.janitor.schedule
    return DatabaseCollector(
        container.storage.stats,
        watched=schedule.watched,
        shortest_wait=schedule.shortest_wait if schedule.watched else timedelta(0),
        outbox=container_outbox_stats(container),
        reconciliation=reconciliation_stats(db) if db is not None else UnrecordedExceptions(),
        ttl_s=container.settings.metrics_cache_s,
    )
