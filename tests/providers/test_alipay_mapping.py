"""Alipay's trade states, amounts and notifications mapped to neutral results (tables
written here, not read from the code)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderguard.providers.alipay import currencies, mapping
from orderguard.providers.alipay.errors import AmountMismatch, UnknownTradeStatus
from orderguard.providers.base import PaymentOutcome, ProviderOutcomeUnknown, UnreadableAmount

PAID = {"send_pay_date": "2026-12-03 16:00:00"}


@pytest.mark.parametrize(
    ("status", "extra", "outcome", "state"),
    [
        ("WAIT_BUYER_PAY", {}, PaymentOutcome.ACTION_REQUIRED, None),
        ("TRADE_SUCCESS", PAID, PaymentOutcome.SUCCEEDED, None),
        ("TRADE_FINISHED", PAID, PaymentOutcome.SUCCEEDED, None),
        ("TRADE_CLOSED", {}, PaymentOutcome.FAILED, None),
        ("TRADE_CLOSED", PAID, PaymentOutcome.SUCCEEDED, "refunded"),
    ],
)
def test_every_trade_state_maps_to_its_outcome(
    status: str, extra: dict[str, str], outcome: PaymentOutcome, state: str | None
) -> None:
    trade = {
        "out_trade_no": "o1",
        "trade_no": "t1",
        "trade_status": status,
        "total_amount": "25.99",
    }
    result = mapping.payment_result({**trade, **extra})
    assert result.outcome is outcome
    assert result.metadata.get("alipay_state") == state
    assert (result.provider_ref, result.amount, result.currency) == ("o1", 2599, "CNY")
    assert result.metadata["trade_no"] == "t1"


def test_a_closed_unpaid_trade_fails_and_invites_another_method() -> None:
    result = mapping.payment_result(
        {"out_trade_no": "o1", "trade_status": "TRADE_CLOSED", "total_amount": "1.00"}
    )
    assert (result.decline_code, result.retry_with_other_method) == ("trade_closed", True)


def test_an_unknown_trade_state_is_never_guessed() -> None:
    with pytest.raises(UnknownTradeStatus):
        mapping.payment_result({"out_trade_no": "o1", "trade_status": "TRADE_PENDING"})


def test_a_paid_amount_other_than_asked_is_unknown_not_success() -> None:
    trade = {"out_trade_no": "o1", "trade_status": "TRADE_SUCCESS", "total_amount": "25.98"}
    with pytest.raises(AmountMismatch):
        mapping.payment_result(trade, asked=mapping.Asked(2599, "CNY"))
    with pytest.raises(AmountMismatch):
        mapping.payment_result(
            {**trade, "total_amount": "25.99", "trans_currency": "USD"},
            asked=mapping.Asked(2599, "CNY"),
        )
    assert (
        mapping.payment_result(
            {**trade, "total_amount": "25.99"}, asked=mapping.Asked(2599, "cny")
        ).amount
        == 2599
    )


def test_a_trade_not_created_yet_waits_for_the_shopper_and_is_marked() -> None:
    result = mapping.not_created("o1", asked=mapping.Asked(100, "CNY"))
    assert result.outcome is PaymentOutcome.ACTION_REQUIRED
    assert result.metadata == {"alipay_state": "not_created"}
    assert (result.amount, result.currency) == (100, "CNY")


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [("25.99", 2599), ("88.8", 8880), ("1", 100), ("0.01", 1), ("100000000.00", 10_000_000_000)],
)
def test_yuan_strings_are_read_exactly(yuan: str, fen: int) -> None:
    assert currencies.from_yuan(yuan) == fen


@pytest.mark.parametrize("bad", ["1.005", "-1.00", "1e3", "", "1,00", " . "])
def test_a_yuan_string_with_more_than_two_decimals_or_a_sign_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        currencies.from_yuan(bad)


@pytest.mark.parametrize(
    ("fen", "yuan"), [(2599, "25.99"), (5, "0.05"), (100, "1.00"), (0, "0.00")]
)
def test_fen_are_written_with_two_decimals(fen: int, yuan: str) -> None:
    assert currencies.to_yuan(fen) == yuan


def test_only_cny_is_supported_from_one_fen_to_a_hundred_million_yuan() -> None:
    rule = currencies.rule("cny")
    assert (rule.supported, rule.minimum, rule.maximum, rule.step) == (True, 1, 10_000_000_000, 1)
    assert not currencies.rule("USD").supported
    assert not currencies.rule("JPY").supported


def test_alipay_times_are_beijing_time() -> None:
    assert mapping.beijing_time("2026-12-03 16:00:00") == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert mapping.alipay_time(datetime(2026, 12, 3, 20, 30, tzinfo=UTC)) == "2026-12-04 04:30:00"


def test_a_payment_notification_becomes_an_event_named_by_its_notify_id() -> None:
    params = {
        "notify_id": "n-1",
        "notify_time": "2026-12-03 16:00:05",
        "out_trade_no": "o1",
        "trade_no": "t1",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "25.99",
        "gmt_payment": "2026-12-03 16:00:00",
    }
    event = mapping.webhook_event(params)
    assert (event.event_id, event.type) == ("n-1", "trade_status.TRADE_SUCCESS")
    assert event.created_at == datetime(2026, 12, 3, 8, 0, 5, tzinfo=UTC)
    assert event.payment is not None and event.payment.outcome is PaymentOutcome.SUCCEEDED
    assert event.charge is None


def test_a_refund_notification_carries_the_cumulative_refund() -> None:
    params = {
        "notify_id": "n-2",
        "out_trade_no": "o1",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "25.99",
        "gmt_payment": "2026-12-03 16:00:00",
        "refund_fee": "10.50",
        "out_biz_no": "rf-1",
    }
    event = mapping.webhook_event(params)
    assert event.charge is not None
    assert (event.charge.amount, event.charge.amount_refunded) == (2599, 1050)
    assert event.charge.metadata == {"out_biz_no": "rf-1"}


def test_an_inexact_paid_amount_is_unreadable_and_counts_as_unknown() -> None:
    trade = {"out_trade_no": "o1", "trade_status": "TRADE_SUCCESS", "total_amount": "25.999"}
    with pytest.raises(UnreadableAmount) as caught:
        mapping.payment_result(trade)
    assert isinstance(caught.value, ProviderOutcomeUnknown)


def test_a_notification_names_its_order_by_the_passback_params_and_a_query_names_none() -> None:
    trade = {"out_trade_no": "o1", "trade_status": "WAIT_BUYER_PAY", "total_amount": "1.00"}
    passed = mapping.passback("ord_1/é")
    assert passed == "ord_1%2F%C3%A9"
    notified = mapping.payment_result({**trade, "passback_params": passed})
    assert notified.order_id == "ord_1/é"
    assert mapping.payment_result(trade).order_id is None
