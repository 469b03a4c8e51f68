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
class Scope:
    """What a run must read from storage to match exactly as against every order
    (:meth:`~.engine.Engine.scope`):

    - every attempt that paid (``succeeded`` or ``refunded``, through ``provider`` when
      named) last updated between ``paid_from`` and ``paid_to`` (none when both are
      ``None``): the payments a report of the period should confirm, or that a charge
      line with no reference can match by amount;
    - every attempt whose provider reference is one of ``refs``, whatever its age: the
      lines' references (charges, refunds and chargebacks of old orders) and order
      references (a wallet's ``out_trade_no``); an applied run looks up the references of
      earlier orphan charges apart (:func:`~.export.paid_refs`);
    - the orders of those attempts, and every order whose id or merchant reference is one
      of ``order_refs``.

    Reading more changes nothing (the engine filters by the same rules); reading less would.
    """

    paid_from: datetime | None
    paid_to: datetime | None
    refs: frozenset[str]
    order_refs: frozenset[str]
    provider: str | None = None


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
