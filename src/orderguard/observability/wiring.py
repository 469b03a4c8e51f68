"""Which outbox and reconciliation readers ``/metrics``, ``doctor`` and the worker use.

:func:`outbox_stats` reads the relay's per-sink delivery records;
:func:`reconciliation_stats` the exceptions applied reconciliation runs recorded.
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.config import Settings
from orderguard.container import Container
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.hooks import (
    OutboxStats,
    ReconciliationStats,
    RecordedExceptionCounts,
    RelayOutbox,
)
from orderguard.storage.database import Database
from orderguard.storage.unit_of_work import SqlStorage


def outbox_stats(db: Database, settings: Settings) -> OutboxStats:
    """The outbox relay's delivery records on ``db``, for the sinks ``settings`` switch on."""
    return RelayOutbox(settings, db)


def reconciliation_stats(db: Database) -> ReconciliationStats:
    """The reconciliation exceptions reader for ``db``."""
    return RecordedExceptionCounts(db)


def sql_database(container: Container) -> Database | None:
    """The container's SQL database, ``None`` on in-memory storage."""
    storage = container.storage
    return storage.db if isinstance(storage, SqlStorage) else None


def database_collector(container: Container) -> DatabaseCollector | None:
    """A collector over the container's database (``None`` on in-memory storage)."""
    db = sql_database(container)
    if db is None:
        return None
    schedule = container.janitor.schedule
    return DatabaseCollector(
        db,
        watched=schedule.watched,
        shortest_wait=schedule.shortest_wait if schedule.watched else timedelta(0),
        outbox=outbox_stats(db, container.settings),
        reconciliation=reconciliation_stats(db),
        ttl_s=container.settings.metrics_cache_s,
    )
