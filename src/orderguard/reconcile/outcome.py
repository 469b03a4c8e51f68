"""What a reconciliation run is asked and what it found: options, results, totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderguard.reconcile.sources import LineError


@dataclass(frozen=True)
class EngineOptions:
    """How to match."""

    period_from: datetime | None = None
    period_to: datetime | None = None
    #: Days either side of a line's time within which an amount match is accepted.
    window_days: int = 3
    #: Only orders paid through this provider are expected in the report (None: all).
    provider: str | None = None
    memory_limit: str = "1GB"
    threads: int | None = None


@dataclass(frozen=True)
class Result:
    """One settlement line's outcome, or an order the report did not confirm."""

    category: str
    file: str | None
    line: int | None
    kind: str | None
    via: str | None
    provider_ref: str | None
    order_ref: str | None
    order_id: str | None
    amount: int | None
    fee: int | None
    currency: str | None
    expected_amount: int | None
    expected_currency: str | None
    at: datetime | None

    @property
    def place(self) -> str:
        """``file:line``, or ``-`` for an order no line names."""
        return f"{self.file}:{self.line}" if self.file else "-"


@dataclass(frozen=True)
class Total:
    """Lines of one category in one currency: how many, and their gross, fee and net."""

    category: str
    currency: str
    count: int
    gross: int
    fee: int
    net: int


@dataclass
class Outcome:
    """Everything a run found, small enough to keep in memory (exceptions stream)."""

    files: list[str]
    counts: dict[str, int]
    totals: list[Total]
    errors: list[LineError]
    period_from: datetime | None
    period_to: datetime | None
    lines: int = 0
    #: Data lines read from each file (usable or not), by file name, in ``files``' order.
    file_lines: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unexplained:
    """An exception an earlier run recorded and no run has explained yet."""

    id: str
    category: str
    order_id: str | None
    provider_ref: str | None
    amount: int | None
