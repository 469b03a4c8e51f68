"""Where ``/metrics`` and ``doctor`` read the outbox relay and reconciliation.

Both are small protocols so the parts that own that data answer for it: the relay's
delivery records (:class:`RelayOutbox`) and reconciliation's results. A reader that cannot
know answers ``None`` and the metric is left out, never made up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from orderguard.config import Settings
from orderguard.reconcile.categories import EXCEPTIONS
from orderguard.reconcile.queries import (
    exception_counts,
    exceptions_by_category,
    open_exceptions_by_category,
)
from orderguard.services.outbox import outbox_health
from orderguard.storage.ports import UnitOfWorkFactory


class OutboxStats(Protocol):
    """What the outbox relay knows about delivery."""

    async def lag_seconds(self, now: datetime) -> float | None:
        """Age of the oldest event not yet delivered to every sink (0 when none waits);
        ``None`` when delivery is not tracked."""
        ...

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        """Events given up on, per sink; ``None`` when not tracked."""
        ...

    async def delivery(self, now: datetime) -> tuple[float | None, dict[str, int] | None]:
        """The lag and the dead letters from one look at the records (what ``/metrics``
        reads)."""
        ...


class ReconciliationStats(Protocol):
    """What reconciliation found that needs a person."""

    async def exceptions_by_category(self) -> dict[str, int] | None:
        """Exceptions ever recorded per category (amount_mismatch, missing_at_provider,
        ...); ``None`` when reconciliation is not part of this deployment."""
        ...

    async def open_exceptions_by_category(self) -> dict[str, int] | None:
        """Exceptions no later run explained yet, per category (every category, zeros
        included); ``None`` when reconciliation is not part of this deployment."""
        ...

    async def exception_counts(self) -> tuple[dict[str, int] | None, dict[str, int] | None]:
        """Both counts in one transaction (what ``/metrics`` reads)."""
        ...


class RelayOutbox:
    """The relay's per-sink delivery records (``services.outbox.outbox_health``), on any
    storage."""

    def __init__(self, settings: Settings, storage: UnitOfWorkFactory) -> None:
        self._settings = settings
        self._storage = storage

    async def lag_seconds(self, now: datetime) -> float | None:
        """The largest lag of any configured sink (0 with none configured)."""
        health = await outbox_health(self._settings, self._storage, now=now)
        return max((h.lag_seconds for h in health), default=0.0)

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        """Dead letters per configured sink, zeros included."""
        return {h.sink: h.dead_letters for h in await outbox_health(self._settings, self._storage)}

    async def delivery(self, now: datetime) -> tuple[float | None, dict[str, int] | None]:
        """Both from one reading of the records."""
        health = await outbox_health(self._settings, self._storage, now=now)
        lag = max((h.lag_seconds for h in health), default=0.0)
        return lag, {h.sink: h.dead_letters for h in health}


class UntrackedOutbox:
    """No storage to read delivery records from (``doctor`` when the database is out of
    reach)."""

    async def lag_seconds(self, now: datetime) -> float | None:
        """Unknown: no relay records deliveries."""
        return None

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        """Unknown: no relay records dead letters."""
        return None

    async def delivery(self, now: datetime) -> tuple[float | None, dict[str, int] | None]:
        """Unknown, both."""
        return None, None


class RecordedExceptionCounts:
    """The exceptions applied reconciliation runs recorded (``reconcile.queries``), on any
    storage."""

    def __init__(self, storage: UnitOfWorkFactory) -> None:
        self._storage = storage

    async def exceptions_by_category(self) -> dict[str, int] | None:
        """Recorded exceptions per category (empty before any applied run)."""
        return await exceptions_by_category(self._storage)

    async def open_exceptions_by_category(self) -> dict[str, int] | None:
        """Open exceptions per category, zeros included."""
        found = await open_exceptions_by_category(self._storage)
        return _every_category(found)

    async def exception_counts(self) -> tuple[dict[str, int] | None, dict[str, int] | None]:
        """Recorded and open exceptions per category, read in one transaction."""
        recorded, still_open = await exception_counts(self._storage)
        return recorded, _every_category(still_open)


def _every_category(found: dict[str, int]) -> dict[str, int]:
    return {category: found.get(category, 0) for category in sorted(EXCEPTIONS)}
