"""Which outbox and reconciliation readers ``/metrics``, ``doctor`` and the worker use.

When the outbox relay lands, :func:`outbox_stats` returns its reader (an ``OutboxStats``
over the relay's per-sink delivery table); when reconciliation lands,
:func:`reconciliation_stats` returns one over its results. Nothing else changes.
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.bootstrap import Container
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.hooks import (
    NoReconciliation,
    OutboxStats,
    ReconciliationStats,
    UntrackedOutbox,
)
from orderguard.storage.database import Database
from orderguard.storage.unit_of_work import SqlStorage


def outbox_stats(db: Database) -> OutboxStats:
    """The outbox delivery reader for ``db``."""
    return UntrackedOutbox()


def reconciliation_stats(db: Database) -> ReconciliationStats:
    """The reconciliation exceptions reader for ``db``."""
    return NoReconciliation()


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
        outbox=outbox_stats(db),
        reconciliation=reconciliation_stats(db),
        ttl_s=container.settings.metrics_cache_s,
    )
