"""How a provider's answer moves an attempt and its order (G3, G6)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderguard.domain.events import Cause, EntryKind
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome, apply_outcome, changes_nothing
from orderguard.domain.states import TERMINAL_ORDER_STATES, AttemptState, OrderState
from tests.factories import new_order

AT = datetime(2026, 11, 24, tzinfo=UTC)
S = AttemptState


def _attempt(order: Order, seq: int) -> PaymentAttempt:
    """Another attempt on the order, leaving the order's state alone."""
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


def _pending(order: Order, seq: int = 1) -> PaymentAttempt:
    attempt = _attempt(order, seq)
    if order.state is not OrderState.PAYMENT_PENDING:
        order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    return attempt


def _ok(order: Order) -> Outcome:
    return Outcome(S.SUCCEEDED, "pi_1", order.total.amount, "eur")


def test_a_success_of_the_right_amount_pays_the_order() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(order, attempt, _ok(order), cause=Cause.API, at=AT)
    assert (order.state, attempt.state, attempt.provider_ref) == ("paid", "succeeded", "pi_1")
    assert order.flag_reason is None


def test_a_success_of_another_amount_is_flagged_never_paid() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(order, attempt, Outcome(S.SUCCEEDED, "pi_1", 1, "EUR"), cause=Cause.API, at=AT)
    assert order.state is OrderState.PAYMENT_PENDING
    assert order.flag_reason is not None and order.flag_reason.startswith("amount mismatch")
    apply_outcome(
        order,
        attempt,
        Outcome(S.SUCCEEDED, "pi_1", order.total.amount, "USD"),
        cause=Cause.API,
        at=AT,
    )
    assert order.state is OrderState.PAYMENT_PENDING


def test_a_late_failure_after_paid_changes_nothing_but_the_timeline() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(order, attempt, _ok(order), cause=Cause.API, at=AT)
    apply_outcome(
        order,
        attempt,
        Outcome(S.FAILED, decline_code="generic_decline"),
        cause=Cause.WEBHOOK,
        at=AT,
    )
    assert (order.state, attempt.state) == ("paid", "succeeded")
    assert order.new_entries[-1].kind is EntryKind.NOTE
    assert "ignored failed" in order.new_entries[-1].note


def test_a_second_successful_attempt_is_flagged_as_a_duplicate_charge() -> None:
    order = new_order()
    first = _pending(order)
    apply_outcome(order, first, Outcome(S.UNKNOWN, reason="timeout"), cause=Cause.API, at=AT)
    apply_outcome(order, first, _ok(order), cause=Cause.JANITOR, at=AT)
    extra = _attempt(order, 2)
    apply_outcome(order, extra, _ok(order), cause=Cause.SWEEP, at=AT)
    assert order.state is OrderState.PAID
    assert order.flag_reason is not None and order.flag_reason.startswith("duplicate charge")


def test_a_decline_fails_the_order_and_keeps_the_decline_code() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(
        order,
        attempt,
        Outcome(S.FAILED, "pi_1", decline_code="insufficient_funds"),
        cause=Cause.API,
        at=AT,
    )
    assert (order.state, attempt.decline_code) == ("payment_failed", "insufficient_funds")
    assert "insufficient_funds" in order.new_entries[-1].note


def test_an_old_attempts_failure_does_not_speak_for_a_newer_attempt() -> None:
    order = new_order()
    first = _pending(order)
    apply_outcome(
        order, first, Outcome(S.FAILED, decline_code="card_declined"), cause=Cause.API, at=AT
    )
    second = _pending(order, seq=2)
    apply_outcome(
        order,
        second,
        Outcome(S.ACTION_REQUIRED, redirect_url="https://3ds"),
        cause=Cause.API,
        at=AT,
    )
    apply_outcome(
        order, first, Outcome(S.FAILED, decline_code="card_declined"), cause=Cause.WEBHOOK, at=AT
    )
    assert order.state is OrderState.ACTION_REQUIRED


@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(list(S))), max_size=25))
def test_no_sequence_of_results_moves_an_order_backwards_or_pays_without_a_success(
    results: list[tuple[int, AttemptState]],
) -> None:
    order = new_order()
    attempts = [_pending(order), _attempt(order, 2)]
    was_terminal = False
    for index, state in results:
        apply_outcome(
            order,
            attempts[index],
            Outcome(state, f"pi_{index}", order.total.amount, "EUR"),
            cause=Cause.WEBHOOK,
            at=AT,
        )
        if was_terminal:
            assert order.state in TERMINAL_ORDER_STATES
        was_terminal = order.state in TERMINAL_ORDER_STATES
        if order.state is OrderState.PAID:
            assert any(a.state in {S.SUCCEEDED, S.REFUNDED} for a in attempts)


def test_the_same_answer_twice_changes_nothing_the_second_time() -> None:
    order = new_order()
    first = _pending(order)
    apply_outcome(order, first, _ok(order), cause=Cause.API, at=AT)
    extra = _attempt(order, 2)
    apply_outcome(order, extra, _ok(order), cause=Cause.SWEEP, at=AT)
    entries = len(order.new_entries)
    apply_outcome(order, extra, _ok(order), cause=Cause.WEBHOOK, at=AT)
    apply_outcome(order, first, _ok(order), cause=Cause.WEBHOOK, at=AT)
    assert len(order.new_entries) == entries


def test_a_success_reported_for_a_closed_attempt_is_flagged_never_ignored() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(
        order,
        attempt,
        Outcome(S.FAILED, "pi_1", decline_code="abandoned"),
        cause=Cause.JANITOR,
        at=AT,
    )
    apply_outcome(order, attempt, _ok(order), cause=Cause.WEBHOOK, at=AT)
    assert attempt.state is S.FAILED
    assert order.flag_reason is not None
    assert order.flag_reason.startswith("charge on a closed attempt")


def test_a_refused_late_answer_changes_none_of_the_attempts_details() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(order, attempt, _ok(order), cause=Cause.API, at=AT)
    late = Outcome(S.FAILED, "pi_other", decline_code="card_declined", redirect_url="https://x")
    apply_outcome(order, attempt, late, cause=Cause.WEBHOOK, at=AT)
    assert (attempt.provider_ref, attempt.decline_code, attempt.redirect_url) == (
        "pi_1",
        None,
        None,
    )


def test_no_answer_after_a_webhook_asked_for_authentication_keeps_action_required() -> None:
    """Race seen in the demo: the webhook says ``requires_action`` while the charge call is
    still in flight; that call then times out. The stale "no answer" must not turn a
    shopper who is authenticating into an unknown outcome."""
    order = new_order()
    attempt = _pending(order)
    action = Outcome(S.ACTION_REQUIRED, "pi_1", redirect_url="https://bank.example/3ds")
    apply_outcome(order, attempt, action, cause=Cause.WEBHOOK, at=AT)
    apply_outcome(order, attempt, Outcome(S.UNKNOWN, reason="timeout"), cause=Cause.API, at=AT)
    assert (order.state, attempt.state) == ("action_required", "action_required")
    assert attempt.redirect_url == "https://bank.example/3ds"
    assert order.new_entries[-1].kind is EntryKind.NOTE


@pytest.mark.parametrize(
    ("cause", "why"),
    [
        (Cause.WEBHOOK, "payment_intent.created delivered after payment_intent.requires_action"),
        (Cause.JANITOR, "a retrieve answering processing, or requires_payment_method bare"),
    ],
)
def test_a_late_pending_snapshot_never_takes_the_3ds_link_away(cause: Cause, why: str) -> None:
    order = new_order()
    attempt = _pending(order)
    action = Outcome(S.ACTION_REQUIRED, "pi_1", redirect_url="https://bank.example/3ds")
    apply_outcome(order, attempt, action, cause=Cause.API, at=AT)
    entries = len(order.new_entries)

    apply_outcome(order, attempt, Outcome(S.PENDING, "pi_1", reason=why), cause=cause, at=AT)

    assert (order.state, attempt.state) == ("action_required", "action_required"), why
    assert attempt.redirect_url == "https://bank.example/3ds"
    [note] = order.new_entries[entries:]
    assert note.kind is EntryKind.NOTE and "ignored pending" in note.note
    apply_outcome(order, attempt, _ok(order), cause=Cause.WEBHOOK, at=AT)
    assert (order.state, attempt.state) == ("paid", "succeeded")  # the real answer still counts


_REFS = st.sampled_from([None, "", "pi_0", "pi_1"])
_CODES = st.sampled_from([None, "", "card_declined", "expired_card"])
_LINKS = st.sampled_from([None, "", "https://3ds.test/a", "https://3ds.test/b"])


@given(
    st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(list(S)), _REFS), max_size=6),
    st.sampled_from([0, 1]),
    st.builds(
        Outcome,
        state=st.sampled_from(list(S)),
        provider_ref=_REFS,
        amount=st.none(),
        currency=st.none(),
        decline_code=_CODES,
        redirect_url=_LINKS,
    ),
)
def test_an_outcome_said_to_change_nothing_leaves_the_order_exactly_as_it_was(
    history: list[tuple[int, AttemptState, str | None]], index: int, outcome: Outcome
) -> None:
    """``changes_nothing`` (what lets a webhook be recorded without settling its order)
    never says so of an outcome that would change the attempt, the order or its timeline."""
    order = new_order()
    attempts = [_pending(order), _attempt(order, 2)]
    for which, state, ref in history:
        apply_outcome(
            order,
            attempts[which],
            Outcome(state, ref, order.total.amount, "EUR", decline_code="card_declined"),
            cause=Cause.WEBHOOK,
            at=AT,
        )
    if not changes_nothing(attempts[index], outcome):
        return
    before = copy.deepcopy(order)
    apply_outcome(order, attempts[index], outcome, cause=Cause.WEBHOOK, at=AT)
    assert order == before


def test_a_repeated_success_changes_nothing_and_one_with_a_new_reference_does() -> None:
    order = new_order()
    attempt = _pending(order)
    apply_outcome(order, attempt, _ok(order), cause=Cause.API, at=AT)
    assert changes_nothing(attempt, _ok(order))
    assert changes_nothing(attempt, Outcome(S.SUCCEEDED))  # says nothing new
    assert not changes_nothing(attempt, Outcome(S.SUCCEEDED, "pi_other"))
    assert not changes_nothing(attempt, Outcome(S.PENDING, "pi_1"))  # a late note is written
