"""The order and attempt state machines make exactly the moves the product promises (G6),
written out by hand in tests/state_moves.py, never read from the code's own tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderguard.domain.errors import IllegalTransition
from orderguard.domain.events import Cause, EntryKind, EventType
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from tests.factories import new_order
from tests.state_moves import (
    ATTEMPT_MOVES,
    ATTEMPT_RANK,
    ATTEMPT_RE_ENTRIES,
    ATTEMPT_STATES,
    ORDER_MOVES,
    ORDER_RANK,
    ORDER_RE_ENTRIES,
    ORDER_STATES,
    path_to,
)

AT = datetime(2026, 11, 24, tzinfo=UTC)
TERMINAL = {"paid", "refunded", "cancelled"}


def test_the_written_state_lists_are_the_code_s_states() -> None:
    assert set(ORDER_STATES) == {s.value for s in OrderState}
    assert set(ATTEMPT_STATES) == {s.value for s in AttemptState}


def test_every_promised_move_goes_forward_or_is_a_named_re_entry() -> None:
    # the hand-written lists agree with themselves: nothing ever goes back to the start,
    # terminal states stay terminal but for a refund, and the only moves down are named
    for moves, rank, re_entries in (
        (ORDER_MOVES, ORDER_RANK, ORDER_RE_ENTRIES),
        (ATTEMPT_MOVES, ATTEMPT_RANK, ATTEMPT_RE_ENTRIES),
    ):
        assert re_entries <= moves
        for source, target in moves - re_entries:
            assert rank[target] > rank[source], f"{source} -> {target} goes backwards"
    assert not [m for m in ORDER_MOVES if m[1] == "received"]
    assert {m for m in ORDER_MOVES if m[0] in TERMINAL} == {("paid", "refunded")}
    assert {m for m in ATTEMPT_MOVES if m[0] in {"succeeded", "failed", "refunded"}} == {
        ("succeeded", "refunded")
    }


def _order_in(state: str) -> Order:
    """A fresh order walked to ``state`` along the promised moves only."""
    order = new_order(at=AT)
    for step in path_to(ORDER_MOVES, "received", state):
        order.move_to(OrderState(step), cause=Cause.JANITOR, at=AT)
    assert order.state == state
    return order


ORDER_PAIRS = [(s, t) for s in ORDER_STATES for t in ORDER_STATES]
ATTEMPT_PAIRS = [(s, t) for s in ATTEMPT_STATES for t in ATTEMPT_STATES]


@pytest.mark.parametrize(
    ("source", "target"), ORDER_PAIRS, ids=[f"{s}->{t}" for s, t in ORDER_PAIRS]
)
def test_an_order_makes_exactly_the_promised_moves(source: str, target: str) -> None:
    order = _order_in(source)
    before = (order.state, len(order.new_entries), len(order.new_events), order.updated_at)
    later = datetime(2026, 11, 25, tzinfo=UTC)
    if (source, target) in ORDER_MOVES:
        order.move_to(OrderState(target), cause=Cause.WEBHOOK, at=later)
        entry = order.new_entries[-1]
        assert (order.state, entry.from_state, entry.to_state) == (target, source, target)
    else:
        with pytest.raises(IllegalTransition):
            order.move_to(OrderState(target), cause=Cause.WEBHOOK, at=later)
        after = (order.state, len(order.new_entries), len(order.new_events), order.updated_at)
        assert after == before


@given(st.lists(st.sampled_from(ORDER_STATES), max_size=30))
def test_no_sequence_of_moves_reaches_a_state_the_promise_forbids(targets: list[str]) -> None:
    order = new_order(at=AT)
    for target in targets:
        before = (order.state, len(order.new_entries), len(order.new_events))
        if (order.state.value, target) in ORDER_MOVES:
            order.move_to(OrderState(target), cause=Cause.JANITOR, at=AT)
            assert order.state == target
            entry = order.new_entries[-1]
            assert (entry.from_state, entry.to_state) == (before[0], target)
        else:
            with pytest.raises(IllegalTransition):
                order.move_to(OrderState(target), cause=Cause.JANITOR, at=AT)
            assert (order.state, len(order.new_entries), len(order.new_events)) == before


@given(st.lists(st.sampled_from(ORDER_STATES), max_size=30))
def test_an_order_only_ever_goes_up_in_rank_but_for_the_named_re_entries(
    targets: list[str],
) -> None:
    order = new_order(at=AT)
    reached_terminal = False
    for target in targets:
        source = order.state.value
        try:
            order.move_to(OrderState(target), cause=Cause.WEBHOOK, at=AT)
        except IllegalTransition:
            continue
        assert order.state != OrderState.RECEIVED
        assert ORDER_RANK[target] > ORDER_RANK[source] or (source, target) in ORDER_RE_ENTRIES, (
            f"{source} -> {target} went backwards"
        )
        if reached_terminal:
            assert (source, target) == ("paid", "refunded")
        reached_terminal = reached_terminal or target in TERMINAL


def test_a_late_failure_never_unpays_an_order() -> None:
    order = new_order(at=AT)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    order.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=AT)
    with pytest.raises(IllegalTransition):
        order.move_to(OrderState.PAYMENT_FAILED, cause=Cause.WEBHOOK, at=AT)
    assert order.state is OrderState.PAID


def test_an_unknown_outcome_cannot_be_cancelled_only_resolved() -> None:
    order = _order_in("payment_unknown")
    with pytest.raises(IllegalTransition):
        order.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=AT)
    assert order.state is OrderState.PAYMENT_UNKNOWN


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


def _attempt(state: str = "pending") -> PaymentAttempt:
    """A payment attempt walked from ``pending`` to ``state`` along the promised moves."""
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
    for step in path_to(ATTEMPT_MOVES, "pending", state):
        attempt.move_to(AttemptState(step), at=AT)
    assert attempt.state == state
    return attempt


@pytest.mark.parametrize(
    ("source", "target"), ATTEMPT_PAIRS, ids=[f"{s}->{t}" for s, t in ATTEMPT_PAIRS]
)
def test_an_attempt_makes_exactly_the_promised_moves(source: str, target: str) -> None:
    attempt = _attempt(source)
    later = datetime(2026, 11, 25, tzinfo=UTC)
    if (source, target) in ATTEMPT_MOVES:
        attempt.move_to(AttemptState(target), at=later)
        assert (attempt.state, attempt.updated_at) == (target, later)
    else:
        with pytest.raises(IllegalTransition):
            attempt.move_to(AttemptState(target), at=later)
        assert (attempt.state, attempt.updated_at) == (source, AT)


@given(st.lists(st.sampled_from(ATTEMPT_STATES), max_size=20))
def test_payment_attempts_only_make_the_promised_moves(targets: list[str]) -> None:
    attempt = _attempt()
    for target in targets:
        before = attempt.state.value
        if (before, target) in ATTEMPT_MOVES:
            attempt.move_to(AttemptState(target), at=AT)
            assert attempt.state == target
        else:
            with pytest.raises(IllegalTransition):
                attempt.move_to(AttemptState(target), at=AT)
            assert attempt.state == before
