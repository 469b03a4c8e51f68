"""What a reconciliation run is asked and what it found: options, results, totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from orderguard.reconcile.sources import LineError
from orderguard.storage.ports import LineRefs


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
      ``None``): the payments a report of the period should confirm;
    - every attempt whose provider reference is one of the ``lines``' references, whatever
      its age (charges, refunds and chargebacks of old orders); an applied run looks up the
      references of earlier orphan charges apart (:func:`~.export.paid_refs`);
    - for each line whose reference names no attempt (or that has none), every attempt
      whose provider reference is the line's order reference (a wallet's
      ``out_trade_no``), and every order whose id or merchant reference it is: the engine
      matches a line by its order reference only when its reference matched nothing;
    - when ``window_from`` and ``window_to`` are set, the attempts that paid between them
      of every order one of the attempts above belongs to whose reference no usable charge
      line names: the order's other payments near the period, which
      decide when it was first paid (an order no line confirms is missing at the provider
      only when that is in the period);
    - the orders of those attempts.

    Without a window (``window_from`` ``None``) the payments between ``paid_from`` and
    ``paid_to`` are every one amount matching can use: the scope is *complete*. With one,
    the payments of the window that no line names and whose order none of the above is
    are left out: they matter only to a charge line that names nothing (matched by amount
    within the window), and those are read apart once the lines are matched
    (:meth:`~.engine.Engine.candidates`). Reading more changes nothing (the engine
    filters by the same rules); reading less would.
    """

    paid_from: datetime | None
    paid_to: datetime | None
    lines: LineRefs = field(default_factory=LineRefs)
    provider: str | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None

    @property
    def complete(self) -> bool:
        """Every payment amount matching can use is in the scope."""
        return self.window_from is None or self.window_to is None

    @cached_property
    def refs(self) -> frozenset[str]:
        """Every reference and order reference the lines name (a superset of what must be
        looked up as a payment's reference: storage that reads in Python looks them all up)."""
        return frozenset(
            ref for entry in self.lines.entries() for ref in entry[:2] if ref is not None
        )

    @cached_property
    def order_refs(self) -> frozenset[str]:
        """Every order reference the lines name (a superset, as :attr:`refs`)."""
        return frozenset(order for _, order, _ in self.lines.entries() if order is not None)


@dataclass(frozen=True)
class Candidates:
    """The payments a run's loose charge lines (lines that name nothing: matched by amount)
    can match, read after the lines are matched (:meth:`~.engine.Engine.candidates`):
    the attempts that paid (through ``provider`` when named) between ``paid_from`` and
    ``paid_to`` whose order's amount is one of ``amounts``, and every attempt of those
    orders that paid between ``window_from`` and ``window_to`` (the first of them decides
    when the order was paid), with their orders."""

    paid_from: datetime
    paid_to: datetime
    amounts: frozenset[int]
    window_from: datetime
    window_to: datetime
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
