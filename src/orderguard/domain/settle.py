"""Applying what a provider says about one attempt to the attempt and its order.

Pure rules for G3 and G6: the order moves only forward; a result that would move it
backwards (a late failure after ``paid``, a late "pending" snapshot from before the 3-D
Secure step once the attempt is ``action_required``) is written on the timeline and changes
nothing else (the shopper keeps the authentication link); a success whose amount or
currency differs from the attempt is never ``paid`` but flagged; a second success for an
order that is already paid is flagged as a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderguard.domain.events import Cause
from orderguard.domain.flags import LABELS, FlagReason
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import refunds_before_paid
from orderguard.domain.states import (
    ATTEMPT_TRANSITIONS,
    ORDER_TRANSITIONS,
    AttemptState,
    OrderState,
)

#: The order state each attempt state leads to.
ORDER_STATE_FOR: dict[AttemptState, OrderState] = {
    AttemptState.PENDING: OrderState.PAYMENT_PENDING,
    AttemptState.ACTION_REQUIRED: OrderState.ACTION_REQUIRED,
    AttemptState.UNKNOWN: OrderState.PAYMENT_UNKNOWN,
    AttemptState.SUCCEEDED: OrderState.PAID,
    AttemptState.FAILED: OrderState.PAYMENT_FAILED,
    AttemptState.REFUNDED: OrderState.REFUNDED,
}

#: Flag reasons, in the words support sees (the start of each flag's text).
CHARGE_ON_CLOSED_ATTEMPT = LABELS[FlagReason.CHARGE_ON_CLOSED_ATTEMPT]
DUPLICATE_CHARGE = LABELS[FlagReason.DUPLICATE_CHARGE]
AMOUNT_MISMATCH = LABELS[FlagReason.AMOUNT_MISMATCH]
CHARGE_AFTER_CANCEL = LABELS[FlagReason.CHARGE_AFTER_CANCEL]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the provider said about an attempt, in domain terms."""

    state: AttemptState
    provider_ref: str | None = None
    amount: int | None = None
    currency: str | None = None
    decline_code: str | None = None
    redirect_url: str | None = None
    #: Why, in words for the timeline (e.g. "timeout after the request was sent").
    reason: str = ""


def apply_outcome(
    order: Order, attempt: PaymentAttempt, outcome: Outcome, *, cause: Cause, at: datetime
) -> None:
    """Move ``attempt`` and ``order`` as far forward as ``outcome`` allows."""
    if outcome.state is attempt.state:
        _remember(attempt, outcome)  # a repeated answer may still bring the reference
        return
    if outcome.state not in ATTEMPT_TRANSITIONS[attempt.state]:
        if outcome.state is AttemptState.SUCCEEDED and attempt.state is AttemptState.FAILED:
            # money was taken on an attempt we had closed: never ignore it (G3)
            order.flag(
                FlagReason.CHARGE_ON_CLOSED_ATTEMPT,
                f"provider reports attempt {attempt.seq} "
                f"({attempt.provider_ref}) succeeded after it was {attempt.state}",
                cause=cause,
                at=at,
            )
            return
        order.note(_ignored(attempt, outcome), cause=cause, at=at)
        return
    _remember(attempt, outcome)  # only answers the state machine accepts change the attempt
    attempt.move_to(outcome.state, at=at)
    if outcome.state is AttemptState.SUCCEEDED and not _amount_matches(
        order, attempt, outcome, cause=cause, at=at
    ):
        return
    _move_order(order, attempt, outcome, cause=cause, at=at)


def changes_nothing(attempt: PaymentAttempt, outcome: Outcome) -> bool:
    """Whether :func:`apply_outcome` of ``outcome`` to ``attempt`` would leave the attempt
    and its order exactly as they are: the attempt is already in the outcome's state and
    the outcome brings no reference, decline code or link the attempt lacks (e.g. a
    ``payment_intent.succeeded`` webhook for an order the charge's answer already paid).
    ``False`` is always safe (the outcome is then applied, changing nothing or not)."""
    return (
        outcome.state is attempt.state
        and outcome.provider_ref in (None, attempt.provider_ref)
        and outcome.decline_code in (None, attempt.decline_code)
        and outcome.redirect_url in (None, attempt.redirect_url)
    )


def _remember(attempt: PaymentAttempt, outcome: Outcome) -> None:
    attempt.provider_ref = outcome.provider_ref or attempt.provider_ref
    attempt.decline_code = outcome.decline_code or attempt.decline_code
    attempt.redirect_url = outcome.redirect_url or attempt.redirect_url


def _amount_matches(
    order: Order, attempt: PaymentAttempt, outcome: Outcome, *, cause: Cause, at: datetime
) -> bool:
    amount = attempt.amount if outcome.amount is None else outcome.amount
    currency = (outcome.currency or attempt.currency).upper()
    if (amount, currency) == (order.total.amount, order.currency):
        return True
    order.flag(
        FlagReason.AMOUNT_MISMATCH,
        f"provider confirmed {amount} {currency} for attempt "
        f"{attempt.seq}, the order totals {order.total.amount} {order.currency}",
        cause=cause,
        at=at,
    )
    return False


def _move_order(
    order: Order, attempt: PaymentAttempt, outcome: Outcome, *, cause: Cause, at: datetime
) -> None:
    target = ORDER_STATE_FOR[outcome.state]
    if _another_attempt_paid(order, attempt, outcome) or (
        outcome.state is AttemptState.SUCCEEDED and order.state is OrderState.CANCELLED
    ):
        cancelled = order.state is OrderState.CANCELLED
        order.flag(
            FlagReason.CHARGE_AFTER_CANCEL if cancelled else FlagReason.DUPLICATE_CHARGE,
            f"attempt {attempt.seq} ({attempt.provider_ref}) also succeeded",
            cause=cause,
            at=at,
        )
        return
    if target is order.state:
        return
    if target not in ORDER_TRANSITIONS[order.state] or _superseded(order, attempt):
        order.note(_ignored(attempt, outcome, order.state), cause=cause, at=at)
        return
    note = f"attempt {attempt.seq} at {attempt.provider}: {outcome.state}"
    if outcome.decline_code:
        note += f" ({outcome.decline_code})"
    if outcome.reason:
        note += f" — {outcome.reason}"
    order.move_to(target, cause=cause, at=at, note=note)
    if target is OrderState.PAID:
        refunds_before_paid(order, attempt, cause=cause, at=at)


def _another_attempt_paid(order: Order, attempt: PaymentAttempt, outcome: Outcome) -> bool:
    """Whether this success is a second charge: another attempt already paid the order."""
    if outcome.state is not AttemptState.SUCCEEDED:
        return False
    return any(
        other.id != attempt.id and other.state in {AttemptState.SUCCEEDED, AttemptState.REFUNDED}
        for other in order.attempts
    )


def _superseded(order: Order, attempt: PaymentAttempt) -> bool:
    """A newer attempt speaks for the order; an older one may only make it paid."""
    newest = order.attempts[-1] if order.attempts else attempt
    return newest.id != attempt.id and attempt.state is not AttemptState.SUCCEEDED


def _ignored(
    attempt: PaymentAttempt, outcome: Outcome, order_state: OrderState | None = None
) -> str:
    where = f"order is {order_state}" if order_state else f"attempt is {attempt.state}"
    return f"ignored {outcome.state} for attempt {attempt.seq}: {where}"
