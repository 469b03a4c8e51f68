"""Where ``/metrics`` and ``doctor`` read the outbox relay and reconciliation.

Both are small protocols so the parts that own that data answer for it. What ships here
is honest about this version: the outbox table records events but nothing records their
delivery yet, so the lag is *unknown* (``None``: the metric is left out, not made up);
no reconciliation has run, so there are no exceptions to count (``None`` likewise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class OutboxStats(Protocol):
    """What the outbox relay knows about delivery."""

    async def lag_seconds(self, now: datetime) -> float | None:
        """Age of the oldest event not yet delivered to every sink (0 when none waits);
        ``None`` when delivery is not tracked."""
        ...

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        """Events given up on, per sink; ``None`` when not tracked."""
        ...


class ReconciliationStats(Protocol):
    """What reconciliation found that needs a person."""

    async def exceptions_by_category(self) -> dict[str, int] | None:
        """Open exceptions per category (amount_mismatch, missing_at_provider, ...);
        ``None`` when reconciliation is not part of this deployment."""
        ...


class UntrackedOutbox:
    """This version's outbox: events are stored, their delivery is not recorded."""

    async def lag_seconds(self, now: datetime) -> float | None:
        """Unknown: no relay records deliveries."""
        return None

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        """Unknown: no relay records dead letters."""
        return None


class NoReconciliation:
    """No reconciliation in this version."""

    async def exceptions_by_category(self) -> dict[str, int] | None:
        """Nothing to count."""
        return None
