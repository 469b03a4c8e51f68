"""The order's methods that replaced services setting its fields: each changes what it says,
records what it says on the timeline, and changes nothing when the move is not allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.errors import IllegalTransition
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import request_refund
from orderguard.domain.states import AttemptState, OrderState
from tests.factories import new_order

AT = datetime(2026, 11, 24, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)


def _attempt(order: Order, seq: int = 1) -> PaymentAttempt:
    return PaymentAttempt(
        id=f"pay_{seq}",
        order_id=order.id,
        seq=seq,
        provider="sandbox",
        method="pm_card_visa",
        amount=order.total.amount,
        currency=order.currency,
        idempotency_key=f"orderguard-pay_{seq}",
        created_at=AT,
        updated_at=AT,
    )


def test_starting_an_attempt_charges_it_at_the_account_it_names_and_stops_waiting() -> None:
    order = new_order(at=AT)
    order.wait_for_provider("pm_card_visa", "every provider is down", cause=Cause.API, at=AT)
    assert order.payment_method == "pm_card_visa"
    assert order.new_entries[-1].note == "every provider is down"

    attempt = _attempt(order)
    order.start_attempt(attempt, livemode=True, cause=Cause.JANITOR, at=LATER, note="sent")

    assert order.attempts == [attempt]
    assert (order.state, order.livemode, order.payment_method) == ("payment_pending", True, None)
    last = order.new_entries[-1]
    assert (last.from_state, last.to_state, last.note) == ("received", "payment_pending", "sent")


def test_starting_an_attempt_without_an_account_keeps_the_orders() -> None:
    order = new_order(at=AT)
    order.start_attempt(_attempt(order), cause=Cause.SWEEP, at=AT)
    assert order.livemode is False
    live = Order.place(
        currency="EUR", lines=list(order.lines), customer=order.customer, at=AT, livemode=True
    )
    live.start_attempt(_attempt(live), cause=Cause.SWEEP, at=AT)
    assert live.livemode is True


def test_an_attempt_an_order_may_not_start_changes_nothing() -> None:
    order = new_order(at=AT)
    order.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=AT)
    entries = list(order.new_entries)
    with pytest.raises(IllegalTransition):
        order.start_attempt(_attempt(order), livemode=True, cause=Cause.API, at=LATER)
    assert (order.attempts, order.livemode, order.new_entries) == ([], False, entries)


def test_cancelling_fails_each_payment_awaiting_authentication_with_the_code_given() -> None:
    order = new_order(at=AT)
    first = _attempt(order)
    order.start_attempt(first, cause=Cause.API, at=AT)
    first.move_to(AttemptState.ACTION_REQUIRED, at=AT)
    order.move_to(OrderState.ACTION_REQUIRED, cause=Cause.API, at=AT)

    order.cancel(
        decline_code="authentication_abandoned",
        cause=Cause.JANITOR,
        at=LATER,
        note="abandoned",
        actor="olga",
    )

    assert (first.state, first.decline_code, first.updated_at) == (
        "failed",
        "authentication_abandoned",
        LATER,
    )
    last = order.new_entries[-1]
    assert (order.state, last.note, last.actor, last.cause) == (
        "cancelled",
        "abandoned",
        "olga",
        "janitor",
    )


def test_a_paid_order_is_never_cancelled_and_its_attempt_is_left_alone() -> None:
    order = new_order(at=AT)
    attempt = _attempt(order)
    order.start_attempt(attempt, cause=Cause.API, at=AT)
    attempt.move_to(AttemptState.SUCCEEDED, at=AT)
    order.move_to(OrderState.PAID, cause=Cause.API, at=AT)
    with pytest.raises(IllegalTransition):
        order.cancel(decline_code="cancelled_by_operator", cause=Cause.SUPPORT, at=LATER, note="")
    assert (order.state, attempt.state, attempt.decline_code) == ("paid", "succeeded", None)


def test_a_failed_attempt_keeps_its_first_decline_code_when_failing_is_not_allowed() -> None:
    order = new_order(at=AT)
    attempt = _attempt(order)
    attempt.fail("card_declined", at=AT)
    with pytest.raises(IllegalTransition):
        attempt.fail("cancelled_by_operator", at=LATER)
    assert (attempt.decline_code, attempt.updated_at) == ("card_declined", AT)


def test_the_janitor_sets_the_next_check_without_counting_one() -> None:
    order = new_order(at=AT)
    order.check_at(LATER)
    assert (order.next_check_at, order.checks, order.last_checked_at) == (LATER, 0, AT)


def test_a_refund_tried_again_waits_from_then() -> None:
    order = new_order(at=AT)
    attempt = _attempt(order)
    order.start_attempt(attempt, cause=Cause.API, at=AT)
    attempt.provider_ref = "pi_1"
    attempt.move_to(AttemptState.SUCCEEDED, at=AT)
    order.move_to(OrderState.PAID, cause=Cause.API, at=AT)
    refund = request_refund(
        order,
        amount=None,
        reason="r",
        requester="olga",
        request_key=None,
        cause=Cause.SUPPORT,
        at=AT,
    )

    assert order.refund_tried(refund.id, at=LATER) is refund
    assert (refund.updated_at, refund.state) == (LATER, "pending")
    with pytest.raises(KeyError):
        order.refund_tried("ref_nobody", at=LATER)
