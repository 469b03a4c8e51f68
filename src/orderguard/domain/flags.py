"""Review flags: why a person should look at an order, each with its own history.

An order carries a set of flags. Each names a reason from a small vocabulary, says who
raised it and when, and, once cleared, who cleared it and when; nothing is deleted (G7).
At most one flag per reason is open at a time. Which order states answer a reason (so the
flag clears itself) and how often a shopper may report a problem are pure policies here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orderguard.domain.states import OrderState


class FlagReason(StrEnum):
    """Why an order is in the review queue."""

    #: The janitor ran out of rechecks and the payment outcome is still not known.
    PAYMENT_UNRESOLVED = "payment_unresolved"
    #: The provider confirmed a charge for another amount or currency than the order's.
    AMOUNT_MISMATCH = "amount_mismatch"
    #: A second charge for an order that was already paid.
    DUPLICATE_CHARGE = "duplicate_charge"
    #: A charge for an order that had been cancelled.
    CHARGE_AFTER_CANCEL = "charge_after_cancel"
    #: The provider reports success for an attempt that had been closed as failed.
    CHARGE_ON_CLOSED_ATTEMPT = "charge_on_closed_attempt"
    #: A charge at the provider that no attempt of the order explains.
    UNEXPLAINED_CHARGE = "unexplained_charge"
    #: A refund failed at the provider after it was accepted: the shopper was not paid back.
    REFUND_FAILED = "refund_failed"
    #: A refund is still pending at the provider after every lookup of its schedule (or
    #: the provider says it never got it): whether the shopper was paid back is not known.
    REFUND_UNRESOLVED = "refund_unresolved"
    #: The provider reports more refunded than was paid: a refund orderguard does not
    #: expect (one made at the provider, or one that failed and is not yet reported so).
    REFUNDED_MORE_THAN_PAID = "refunded_more_than_paid"
    #: The shopper reported a problem on the order status page.
    SHOPPER_REPORT = "shopper_report"
    #: A settlement report charged another amount than the order's.
    RECONCILIATION_AMOUNT_MISMATCH = "reconciliation_amount_mismatch"
    #: A settlement report charged another currency than the order's.
    RECONCILIATION_CURRENCY_MISMATCH = "reconciliation_currency_mismatch"
    #: A paid order the settlement report does not confirm.
    RECONCILIATION_MISSING_AT_PROVIDER = "reconciliation_missing_at_provider"
    #: A settlement report holds a second charge for the order.
    RECONCILIATION_DUPLICATE = "reconciliation_duplicate"
    #: A flag stored before flags had reasons; its text says why.
    OTHER = "other"


#: How each reason starts the text support reads (the flag's words before version 7).
LABELS: dict[FlagReason, str] = {
    FlagReason.PAYMENT_UNRESOLVED: "payment outcome still unresolved",
    FlagReason.AMOUNT_MISMATCH: "amount mismatch",
    FlagReason.DUPLICATE_CHARGE: "duplicate charge",
    FlagReason.CHARGE_AFTER_CANCEL: "charged after cancellation",
    FlagReason.CHARGE_ON_CLOSED_ATTEMPT: "charge on a closed attempt",
    FlagReason.UNEXPLAINED_CHARGE: "unexplained charge",
    FlagReason.REFUND_FAILED: "refund failed",
    FlagReason.REFUND_UNRESOLVED: "refund still unresolved",
    FlagReason.REFUNDED_MORE_THAN_PAID: "refunded more than paid",
    FlagReason.SHOPPER_REPORT: "shopper reported a problem",
    FlagReason.RECONCILIATION_AMOUNT_MISMATCH: "reconciliation",
    FlagReason.RECONCILIATION_CURRENCY_MISMATCH: "reconciliation",
    FlagReason.RECONCILIATION_MISSING_AT_PROVIDER: "reconciliation",
    FlagReason.RECONCILIATION_DUPLICATE: "reconciliation",
    FlagReason.OTHER: "",
}

#: The order states that answer a reason: reaching one clears the flag by itself. Reasons
#: not listed (money in the wrong place, a shopper's words) wait for a person.
ANSWERED_BY: dict[FlagReason, frozenset[OrderState]] = {
    FlagReason.PAYMENT_UNRESOLVED: frozenset(
        {OrderState.PAID, OrderState.PAYMENT_FAILED, OrderState.CANCELLED, OrderState.REFUNDED}
    ),
}

#: How often one order may take a shopper's report.
SHOPPER_REPORT_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ReviewFlag:
    """One reason to look at an order, raised once and cleared at most once."""

    id: str
    reason: FlagReason
    #: What exactly is wrong, in words (the amounts, the charge, the shopper's message).
    detail: str
    #: Who raised it: a part of the system (``janitor``, ``sweep``...) or a named person/key.
    raised_by: str
    raised_at: datetime
    cleared_at: datetime | None = None
    cleared_by: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether the flag still waits for someone."""
        return self.cleared_at is None

    def fields(self) -> dict[str, Any]:
        """What the API shows and the database stores of the flag, beside its id."""
        return {
            "reason": str(self.reason),
            "detail": self.detail,
            "raised_by": self.raised_by,
            "raised_at": self.raised_at,
            "cleared_at": self.cleared_at,
            "cleared_by": self.cleared_by,
        }

    @property
    def text(self) -> str:
        """The reason's label and the detail, as support reads it."""
        label = LABELS[self.reason]
        return f"{label}: {self.detail}" if label and self.detail else label or self.detail


def answered(reason: FlagReason, *, state: OrderState) -> bool:
    """Whether an order in ``state`` answers ``reason``, so its flag may clear itself."""
    return state in ANSWERED_BY.get(reason, frozenset())


def may_take_report(
    flags: list[ReviewFlag], *, now: datetime, interval: timedelta = SHOPPER_REPORT_INTERVAL
) -> bool:
    """Whether the order may take a shopper's report now.

    Not while support still has an open report on it, nor within ``interval`` of the last
    one: a shopper (or a script) cannot flood the review queue or the order's history.
    """
    reports = [f for f in flags if f.reason is FlagReason.SHOPPER_REPORT]
    if any(f.is_open for f in reports):
        return False
    return not reports or now - max(f.raised_at for f in reports) >= interval
