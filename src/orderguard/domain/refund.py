"""Applying a refund the provider reports to the refunded attempt and its order (G6, G7).

A refund covering the whole charge moves the attempt to ``refunded`` and, when that attempt
is what paid the order, the order from ``paid`` to ``refunded``. Refunding a duplicate charge
leaves the order paid. A partial refund, or one that does not fit the state machine, is a
timeline note and changes nothing else; a repeated report of the same refund is ignored.

A refund the provider reports as failed (even after the order is ``refunded``: a card
refund can fail days later) means the shopper did not get that money back. It never moves
the order backwards (G6); it flags the order for review, once per refund, so a person sees it.
"""

from __future__ import annotations

from datetime import datetime

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState


def apply_refund(
    order: Order, attempt: PaymentAttempt, *, amount: int, cause: Cause, at: datetime
) -> None:
    """Record that ``amount`` minor units of ``attempt``'s charge were refunded."""
    what = f"refund of {amount} {attempt.currency} on attempt {attempt.seq}"
    if attempt.state is AttemptState.REFUNDED:
        return  # already refunded in full: a repeated report
    if attempt.state is not AttemptState.SUCCEEDED:
        order.note(f"ignored {what}: attempt is {attempt.state}", cause=cause, at=at)
        return
    if amount < attempt.amount:
        order.note(f"partial {what}; the order stays {order.state}", cause=cause, at=at)
        return
    attempt.move_to(AttemptState.REFUNDED, at=at)
    if order.state is OrderState.PAID and not _paid_by_another(order, attempt):
        order.move_to(OrderState.REFUNDED, cause=cause, at=at, note=f"full {what}")
        return
    order.note(f"full {what}; the order stays {order.state}", cause=cause, at=at)


#: Refund statuses that mean the money was not given back (Stripe's ``failed``, ``canceled``).
REFUND_NOT_MADE = frozenset({"failed", "canceled"})


def apply_refund_failure(
    order: Order,
    attempt: PaymentAttempt | None,
    *,
    refund_ref: str,
    amount: int,
    currency: str,
    reason: str | None,
    cause: Cause,
    at: datetime,
) -> None:
    """Flag ``order``: refund ``refund_ref`` failed and the shopper was not paid back."""
    whose = f"attempt {attempt.seq}" if attempt is not None else "a payment we do not know"
    detail = (
        f"refund {refund_ref} of {amount} {currency} on {whose} failed at the provider "
        f"({reason or 'no reason given'}); the shopper was not paid back, the order stays "
        f"{order.state}"
    )
    flagged = order.open_flag(FlagReason.REFUND_FAILED)
    if flagged is not None and flagged.detail == detail:
        return  # the same failure reported again (another event about the same refund)
    order.flag(FlagReason.REFUND_FAILED, detail, cause=cause, at=at)


def _paid_by_another(order: Order, attempt: PaymentAttempt) -> bool:
    return any(
        other.id != attempt.id and other.state is AttemptState.SUCCEEDED for other in order.attempts
    )
