"""G6 with two attempts: once a newer attempt is out, it speaks for the order. A late answer
for an older attempt still moves that attempt, but moves the order only to ``paid`` (money
taken is never ignored); a late decline or "action required" of the older attempt is a note."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderguard.domain.events import Cause, EntryKind
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.domain.states import AttemptState, OrderState
from tests.factories import new_order

AT = datetime(2026, 11, 24, tzinfo=UTC)


def _add_attempt(order: Order, seq: int) -> PaymentAttempt:
    attempt = PaymentAttempt(
        id=f"pay_{seq}",
        order_id=order.id,
        seq=seq,
        provider="sandbox",
        method="pm_card_visa",
        amount=order.total.amount,
        currency=order.currency,
        idempotency_key=f"k{seq}",
        created_at=AT,
        updated_at=AT,
    )
    order.attempts.append(attempt)
    return attempt


def _two_open_attempts() -> tuple[Order, PaymentAttempt, PaymentAttempt]:
    """An order charging with attempt 2 while attempt 1 is still open at the provider."""
    order = new_order(at=AT)
    older = _add_attempt(order, 1)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    newer = _add_attempt(order, 2)
    return order, older, newer


@pytest.mark.parametrize(
    ("late", "attempt_after"),
    [
        (Outcome(AttemptState.FAILED, "pi_1", decline_code="card_declined"), "failed"),
        (Outcome(AttemptState.ACTION_REQUIRED, "pi_1", redirect_url="u"), "action_required"),
        (Outcome(AttemptState.UNKNOWN, "pi_1"), "unknown"),
    ],
    ids=["declined", "action-required", "unknown"],
)  # fmt: skip
def test_a_late_answer_for_an_older_attempt_does_not_speak_for_the_order(
    late: Outcome, attempt_after: str
) -> None:
    order, older, newer = _two_open_attempts()
    apply_outcome(order, older, late, cause=Cause.WEBHOOK, at=AT)
    assert (older.state, newer.state) == (attempt_after, "pending")
    assert order.state is OrderState.PAYMENT_PENDING
    last = order.new_entries[-1]
    assert last.kind is EntryKind.NOTE
    assert last.note == f"ignored {late.state} for attempt 1: order is payment_pending"


def test_a_success_of_an_older_attempt_still_pays_the_order() -> None:
    order, older, newer = _two_open_attempts()
    success = Outcome(AttemptState.SUCCEEDED, "pi_1", order.total.amount, "EUR")
    apply_outcome(order, older, success, cause=Cause.WEBHOOK, at=AT)
    assert (order.state, older.state, newer.state) == ("paid", "succeeded", "pending")
