"""Review flags are a set with history: several reasons at once, each raised and cleared on
its own, a system reason clearing itself when the order's state answers it (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.events import Cause, EntryKind
from orderguard.domain.flags import FlagReason, ReviewFlag, may_take_report
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from tests.factories import new_order

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)


def _unknown_order() -> Order:
    order = new_order(at=AT)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    order.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=AT)
    return order


def _open(order: Order) -> list[str]:
    return [str(f.reason) for f in order.open_flags]


def test_an_order_carries_two_open_flags_and_clearing_one_leaves_the_other() -> None:
    order = new_order(at=AT)
    order.flag(FlagReason.AMOUNT_MISMATCH, "charged 40.00 EUR", cause=Cause.WEBHOOK, at=AT)
    order.flag(FlagReason.SHOPPER_REPORT, "where is my parcel?", cause=Cause.SHOPPER, at=AT)
    assert _open(order) == ["amount_mismatch", "shopper_report"]

    assert order.clear_flag(FlagReason.SHOPPER_REPORT, "parcel sent", actor="maria", at=LATER)

    assert _open(order) == ["amount_mismatch"]
    cleared = [f for f in order.flags if not f.is_open]
    assert [(f.reason, f.cleared_by, f.cleared_at) for f in cleared] == [
        (FlagReason.SHOPPER_REPORT, "maria", LATER)
    ]
    assert order.flag_reason == "amount mismatch: charged 40.00 EUR"


def test_every_raise_and_clear_is_a_timeline_entry_naming_who() -> None:
    order = new_order(at=AT)
    order.new_entries.clear()
    order.flag(FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=AT)
    order.clear_flag(FlagReason.DUPLICATE_CHARGE, "refunded pi_2", actor="li", at=LATER)
    entries = [(e.kind, e.cause, e.actor, e.note) for e in order.new_entries]
    assert entries == [
        (EntryKind.FLAGGED, Cause.SWEEP, None, "duplicate charge: pi_2"),
        (EntryKind.FLAG_CLEARED, Cause.SUPPORT, "li", "duplicate_charge cleared: refunded pi_2"),
    ]
    assert order.flags[0].raised_by == "sweep"


def test_raising_an_open_reason_again_adds_no_second_flag_but_keeps_the_words() -> None:
    order = new_order(at=AT)
    assert order.flag(FlagReason.AMOUNT_MISMATCH, "attempt 1", cause=Cause.WEBHOOK, at=AT)
    assert not order.flag(FlagReason.AMOUNT_MISMATCH, "attempt 2", cause=Cause.WEBHOOK, at=LATER)
    assert len(order.flags) == 1
    assert order.new_entries[-1].kind is EntryKind.NOTE
    assert "attempt 2" in order.new_entries[-1].note


def test_clearing_a_reason_that_is_not_open_changes_nothing() -> None:
    order = new_order(at=AT)
    order.new_entries.clear()
    assert not order.clear_flag(FlagReason.AMOUNT_MISMATCH, "nothing", actor="maria", at=AT)
    assert (order.flags, order.new_entries) == ([], [])


def test_an_unresolved_payment_flag_clears_itself_when_the_order_is_paid() -> None:
    order = _unknown_order()
    order.flag(FlagReason.PAYMENT_UNRESOLVED, "still unknown", cause=Cause.JANITOR, at=AT)
    order.flag(FlagReason.SHOPPER_REPORT, "was I charged?", cause=Cause.SHOPPER, at=AT)
    order.new_entries.clear()

    order.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=LATER)

    assert _open(order) == ["shopper_report"]
    cleared = order.flags[0]
    assert (cleared.reason, cleared.cleared_at, cleared.cleared_by) == (
        FlagReason.PAYMENT_UNRESOLVED,
        LATER,
        "webhook",
    )
    kinds = [(e.kind, e.to_state, e.cause) for e in order.new_entries]
    assert kinds == [
        (EntryKind.STATE_CHANGED, OrderState.PAID, Cause.WEBHOOK),
        (EntryKind.FLAG_CLEARED, OrderState.PAID, Cause.WEBHOOK),
    ]
    assert "payment_unresolved" in order.new_entries[-1].note


def test_a_state_that_does_not_answer_the_reason_leaves_the_flag_open() -> None:
    order = new_order(at=AT)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    order.flag(FlagReason.PAYMENT_UNRESOLVED, "still pending", cause=Cause.JANITOR, at=AT)
    order.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.JANITOR, at=LATER)
    assert _open(order) == ["payment_unresolved"]


def test_money_in_the_wrong_place_never_clears_itself() -> None:
    order = _unknown_order()
    order.flag(FlagReason.AMOUNT_MISMATCH, "40.00 EUR", cause=Cause.WEBHOOK, at=AT)
    order.move_to(OrderState.PAYMENT_FAILED, cause=Cause.WEBHOOK, at=LATER)
    assert _open(order) == ["amount_mismatch"]


def _report(at: datetime, *, cleared: bool) -> ReviewFlag:
    return ReviewFlag(
        "flg_1",
        FlagReason.SHOPPER_REPORT,
        "help",
        "shopper",
        at,
        cleared_at=at if cleared else None,
        cleared_by="maria" if cleared else None,
    )


def test_a_shopper_may_report_once_an_hour_and_not_while_support_has_the_report() -> None:
    assert may_take_report([], now=AT)
    recent = [_report(AT - timedelta(minutes=59), cleared=True)]
    assert not may_take_report(recent, now=AT)
    old = [_report(AT - timedelta(hours=1), cleared=True)]
    assert may_take_report(old, now=AT)
    still_open = [_report(AT - timedelta(hours=5), cleared=False)]
    assert not may_take_report(still_open, now=AT)
