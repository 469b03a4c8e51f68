"""A refund the provider reports as failed is recorded and surfaced, never dropped (G6, G7, G11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderguard.domain.events import Cause, EntryKind, EventType
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import (
    apply_provider_refund,
    apply_refund_failure,
    request_refund,
    settle_refund,
)
from orderguard.domain.refund_record import RefundState
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.domain.states import AttemptState, OrderState
from tests.factories import new_order

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _attempt(order: Order, *, provider_ref: str | None = None) -> PaymentAttempt:
    """Attempt 1 of ``order``, for its whole total, added to it."""
    attempt = PaymentAttempt(
        id="pay_1",
        order_id=order.id,
        seq=1,
        provider="stripe",
        method="pm_card_visa",
        amount=order.total.amount,
        currency=order.currency,
        idempotency_key="k1",
        created_at=AT,
        updated_at=AT,
        provider_ref=provider_ref,
    )
    order.attempts.append(attempt)
    return attempt


def _refunded() -> tuple[Order, PaymentAttempt]:
    """An order paid in full by one attempt, then refunded in full."""
    order = new_order()
    attempt = _attempt(order)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    paid = Outcome(AttemptState.SUCCEEDED, "pi_1", order.total.amount, order.currency)
    apply_outcome(order, attempt, paid, cause=Cause.API, at=AT)
    apply_provider_refund(
        order,
        attempt,
        refund_ref="re_0",
        amount=order.total.amount,
        currency=order.currency,
        status=RefundState.SUCCEEDED,
        failure_reason=None,
        refund_id=None,
        cause=Cause.WEBHOOK,
        at=AT,
    )
    assert (order.state, attempt.state) == ("refunded", "refunded")
    return order, attempt


def _fail(order: Order, attempt: PaymentAttempt | None, reason: str | None) -> None:
    apply_refund_failure(
        order,
        attempt,
        refund_ref="re_1",
        amount=order.total.amount,
        currency=order.currency,
        reason=reason,
        cause=Cause.WEBHOOK,
        at=AT,
    )


def test_a_refund_failing_after_the_order_is_refunded_flags_it_for_review() -> None:
    order, attempt = _refunded()
    entries = len(order.new_entries)

    _fail(order, attempt, "expired_or_canceled_card")

    assert order.state is OrderState.REFUNDED  # state never moves back (G6)
    assert attempt.state is AttemptState.REFUNDED
    assert order.flag_reason is not None
    paid = f"{order.total.amount} {order.currency}"
    assert order.flag_reason.startswith(f"refund failed: refund re_1 of {paid} on attempt 1")
    assert "expired_or_canceled_card" in order.flag_reason
    assert "not paid back" in order.flag_reason
    [entry] = order.new_entries[entries:]
    assert (entry.kind, entry.cause) == (EntryKind.FLAGGED, Cause.WEBHOOK)
    assert order.new_events[-1].type is EventType.FLAGGED  # the merchant is told too


def test_the_same_refund_failure_reported_twice_flags_once() -> None:
    order, attempt = _refunded()
    _fail(order, attempt, None)
    entries = len(order.new_entries)
    _fail(order, attempt, None)  # refund.updated and charge.refund.updated about one refund
    assert order.new_entries[entries:] == []
    assert order.flag_reason is not None and "no reason given" in order.flag_reason


def test_a_failed_refund_of_a_payment_we_do_not_know_is_still_surfaced() -> None:
    order, _ = _refunded()
    _fail(order, None, "declined")
    assert order.flag_reason is not None
    assert "on a payment we do not know" in order.flag_reason


def _paid() -> tuple[Order, PaymentAttempt]:
    """An order of 4848 EUR paid in full by one attempt (``pi_1``)."""
    order = new_order()
    attempt = _attempt(order)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    paid = Outcome(AttemptState.SUCCEEDED, "pi_1", 4848, "EUR")
    apply_outcome(order, attempt, paid, cause=Cause.API, at=AT)
    assert order.state == "paid"
    return order, attempt


@pytest.mark.parametrize(
    ("refunded", "states", "left"),
    [(4848, ("refunded", "refunded"), 0), (1000, ("paid", "succeeded"), 3848)],
    ids=["all", "part"],
)
def test_a_refund_reported_before_the_payment_counts_once_the_order_is_paid(
    refunded: int, states: tuple[str, str], left: int
) -> None:
    """The refund's webhook overtook the payment's: once paid, all of it refunded is
    ``refunded`` (never a paid order with nothing left to refund); a part leaves it paid
    with the rest to refund."""
    order = new_order()
    attempt = _attempt(order, provider_ref="pi_1")
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    apply_provider_refund(
        order,
        attempt,
        refund_ref="re_0",
        amount=refunded,
        currency="EUR",
        status=RefundState.SUCCEEDED,
        failure_reason=None,
        refund_id=None,
        cause=Cause.WEBHOOK,
        at=AT,
    )
    paid = Outcome(AttemptState.SUCCEEDED, "pi_1", 4848, "EUR")
    apply_outcome(order, attempt, paid, cause=Cause.WEBHOOK, at=AT)
    assert (order.state, attempt.state) == states
    assert (order.amount_refunded, order.amount_refundable) == (refunded, left)


def test_an_overtaking_webhook_s_success_is_kept_when_our_answer_says_pending() -> None:
    """Our refund's answer (``pending``) comes after the provider's webhook that it
    succeeded, without our refund_id: the success is ours, counted once."""
    order, _ = _paid()
    ours = request_refund(
        order,
        amount=1000,
        reason="r",
        requester="api:k",
        request_key="k-1",
        cause=Cause.API,
        at=AT,
    )
    attempt = order.attempts[0]
    apply_provider_refund(
        order,
        attempt,
        refund_ref="re_9",
        amount=1000,
        currency="EUR",
        status=RefundState.SUCCEEDED,
        failure_reason=None,
        refund_id=None,
        cause=Cause.WEBHOOK,
        at=AT,
    )
    settle_refund(
        order,
        ours,
        RefundState.PENDING,
        provider_ref="re_9",
        failure_reason=None,
        cause=Cause.API,
        at=AT,
    )
    assert ours.state == "succeeded"
    assert order.amount_refunded == 1000
    assert [r.state for r in order.refunds if r is not ours] == ["failed"]  # the twin


def test_a_keyless_refund_all_does_not_resume_an_unanswered_partial_refund() -> None:
    order, _ = _paid()
    part = request_refund(
        order,
        amount=1000,
        reason="r",
        requester="api:k",
        request_key=None,
        cause=Cause.API,
        at=AT,
    )
    again = request_refund(
        order,
        amount=1000,
        reason="r",
        requester="api:k",
        request_key=None,
        cause=Cause.API,
        at=AT,
    )
    assert again is part  # the same unanswered request, repeated: one refund
    rest = request_refund(
        order,
        amount=None,
        reason="r",
        requester="api:k",
        request_key=None,
        cause=Cause.API,
        at=AT,
    )
    assert rest is not part and rest.amount == 3848
    assert (
        request_refund(
            order,
            amount=None,
            reason="r",
            requester="api:k",
            request_key=None,
            cause=Cause.API,
            at=AT,
        )
        is rest
    )  # "all that is left", repeated, resumes the refund that took the rest


def _provider_refund(order: Order, attempt: PaymentAttempt, ref: str, amount: int) -> None:
    apply_provider_refund(
        order,
        attempt,
        refund_ref=ref,
        amount=amount,
        currency=order.currency,
        status=RefundState.SUCCEEDED,
        failure_reason=None,
        refund_id=None,
        cause=Cause.WEBHOOK,
        at=AT,
    )


def test_a_refund_reported_after_all_was_refunded_flags_more_than_paid_once() -> None:
    # Found by the refund state machine: a 1-cent refund made at the provider fails there,
    # the whole order is refunded, then the 1-cent refund's success arrives before its failure.
    order, attempt = _refunded()
    paid = order.amount_paid

    _provider_refund(order, attempt, "re_dash", 1)
    _provider_refund(order, attempt, "re_dash_2", 2)

    assert order.amount_refunded == paid + 3
    assert order.state is OrderState.REFUNDED
    [flag] = order.open_flags
    assert flag.reason == "refunded_more_than_paid"
    assert f"{paid + 1} is counted as refunded of {paid} paid" in flag.detail


def test_all_refunded_but_no_more_raises_no_flag() -> None:
    order = new_order()
    attempt = _attempt(order)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    paid = Outcome(AttemptState.SUCCEEDED, "pi_1", order.total.amount, order.currency)
    apply_outcome(order, attempt, paid, cause=Cause.API, at=AT)

    _provider_refund(order, attempt, "re_a", order.total.amount - 1)
    _provider_refund(order, attempt, "re_b", 1)

    assert order.state is OrderState.REFUNDED
    assert list(order.open_flags) == []
