"""The order and attempt state machines: only the table's moves, terminal stays terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderguard.domain.errors import IllegalTransition
from orderguard.domain.events import Cause, EntryKind, EventType
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import PaymentAttempt
from orderguard.domain.states import (
    ATTEMPT_TRANSITIONS,
    ORDER_TRANSITIONS,
    TERMINAL_ORDER_STATES,
    AttemptState,
    OrderState,
)
from tests.factories import new_order

AT = datetime(2026, 11, 24, tzinfo=UTC)


@given(st.lists(st.sampled_from(list(OrderState)), max_size=30))
def test_no_sequence_of_events_reaches_a_state_the_table_forbids(targets: list[OrderState]) -> None:
    order = new_order(at=AT)
    for target in targets:
        before = (order.state, len(order.new_entries), len(order.new_events))
        allowed = target in ORDER_TRANSITIONS[order.state]
        if allowed:
            order.move_to(target, cause=Cause.JANITOR, at=AT)
            assert order.state is target
            entry = order.new_entries[-1]
            assert (entry.from_state, entry.to_state) == (before[0], target)
        else:
            with pytest.raises(IllegalTransition):
                order.move_to(target, cause=Cause.JANITOR, at=AT)
            assert (order.state, len(order.new_entries), len(order.new_events)) == before


@given(st.lists(st.sampled_from(list(OrderState)), max_size=30))
def test_terminal_states_stay_terminal(targets: list[OrderState]) -> None:
    order = new_order(at=AT)
    reached_terminal = False
    for target in targets:
        try:
            order.move_to(target, cause=Cause.WEBHOOK, at=AT)
        except IllegalTransition:
            pass
        reached_terminal = reached_terminal or order.state in TERMINAL_ORDER_STATES
        if reached_terminal:
            assert order.state in TERMINAL_ORDER_STATES


def test_terminal_states_allow_only_paid_to_refunded() -> None:
    for state in TERMINAL_ORDER_STATES:
        assert ORDER_TRANSITIONS[state] <= {OrderState.REFUNDED}
    assert ORDER_TRANSITIONS[OrderState.PAID] == {OrderState.REFUNDED}


def test_a_late_failure_never_unpays_an_order() -> None:
    order = new_order(at=AT)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    order.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=AT)
    with pytest.raises(IllegalTransition):
        order.move_to(OrderState.PAYMENT_FAILED, cause=Cause.WEBHOOK, at=AT)
    assert order.state is OrderState.PAID


def test_an_unknown_outcome_cannot_be_cancelled_only_resolved() -> None:
    assert OrderState.CANCELLED not in ORDER_TRANSITIONS[OrderState.PAYMENT_UNKNOWN]


def test_every_state_change_is_on_the_timeline_with_its_cause_and_emits_its_event() -> None:
    order = new_order(at=AT)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    order.move_to(OrderState.PAID, cause=Cause.SUPPORT, at=AT, actor="maria", note="checked")
    kinds = [(e.kind, e.from_state, e.to_state, e.cause) for e in order.new_entries]
    assert kinds == [
        (EntryKind.STATE_CHANGED, None, OrderState.RECEIVED, Cause.API),
        (EntryKind.STATE_CHANGED, OrderState.RECEIVED, OrderState.PAYMENT_PENDING, Cause.API),
        (EntryKind.STATE_CHANGED, OrderState.PAYMENT_PENDING, OrderState.PAID, Cause.SUPPORT),
    ]
    assert order.new_entries[-1].actor == "maria"
    assert [e.type for e in order.new_events] == [EventType.RECEIVED, EventType.PAID]
    assert len({e.id for e in order.new_events}) == 2


def test_flagging_records_a_reason_and_an_event_without_moving_state() -> None:
    order = new_order(at=AT)
    order.flag(FlagReason.AMOUNT_MISMATCH, "", cause=Cause.RECONCILIATION, at=AT)
    assert (order.state, order.flag_reason) == (OrderState.RECEIVED, "amount mismatch")
    assert order.new_entries[-1].kind is EntryKind.FLAGGED
    assert order.new_events[-1].type is EventType.FLAGGED
    order.clear_flag(FlagReason.AMOUNT_MISMATCH, "refunded by hand", actor="maria", at=AT)
    assert order.flag_reason is None
    assert order.new_entries[-1].actor == "maria"


@given(st.lists(st.sampled_from(list(AttemptState)), max_size=20))
def test_payment_attempts_only_move_along_their_table(targets: list[AttemptState]) -> None:
    attempt = PaymentAttempt(
        id="pay_1",
        order_id="ord_1",
        seq=1,
        provider="sandbox",
        method="pm_card_visa",
        amount=100,
        currency="EUR",
        idempotency_key="k",
        created_at=AT,
        updated_at=AT,
    )
    for target in targets:
        before = attempt.state
        if target in ATTEMPT_TRANSITIONS[before]:
            attempt.move_to(target, at=AT)
            assert attempt.state is target
        else:
            with pytest.raises(IllegalTransition):
                attempt.move_to(target, at=AT)
            assert attempt.state is before
