"""WeChat Pay transactions, refunds and notifications as neutral results: every trade
state, the markers, exact amounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderguard.providers.base import PaymentOutcome, UnreadableAmount
from orderguard.providers.wechatpay import mapping

SUCCEEDED, PENDING, FAILED = PaymentOutcome.SUCCEEDED, PaymentOutcome.PENDING, PaymentOutcome.FAILED
WAITING = PaymentOutcome.ACTION_REQUIRED


def _trade(state: str, **extra: object) -> dict[str, object]:
    return {
        "mchid": "1900009191",
        "out_trade_no": "att_01ABCDEF",
        "trade_state": state,
        "attach": '{"order_id":"ord_01XYZ"}',
        "amount": {"total": 2599, "currency": "CNY"},
        **extra,
    }


@pytest.mark.parametrize(
    ("state", "outcome", "decline"),
    [
        ("SUCCESS", SUCCEEDED, None),
        ("REFUND", SUCCEEDED, None),
        ("NOTPAY", WAITING, None),
        ("USERPAYING", PENDING, None),
        ("CLOSED", FAILED, "closed"),
        ("REVOKED", FAILED, "revoked"),
        ("PAYERROR", FAILED, "payerror"),
        ("SOMETHING_NEW", PENDING, None),
    ],
)
def test_every_trade_state_maps_to_its_outcome(
    state: str, outcome: PaymentOutcome, decline: str | None
) -> None:
    result = mapping.payment_result(_trade(state))
    assert (result.outcome, result.decline_code) == (outcome, decline)
    assert result.metadata["wechatpay_trade_state"] == state
    assert (result.provider_ref, result.order_id) == ("att_01ABCDEF", "ord_01XYZ")
    assert (result.amount, result.currency) == (2599, "CNY")


def test_a_trade_not_yet_created_waits_for_the_shopper_with_its_marker() -> None:
    result = mapping.not_yet_created("att_01ABCDEF")
    assert result.outcome is WAITING
    assert mapping.is_not_yet_created(result)
    assert not mapping.is_not_yet_created(mapping.payment_result(_trade("NOTPAY")))


@pytest.mark.parametrize(
    "amount",
    [
        {"total": 25.99, "currency": "CNY"},
        {"total": "2599", "currency": "CNY"},
        {"total": -1, "currency": "CNY"},
        {"total": True, "currency": "CNY"},
        {"total": 2599, "currency": "USD"},
    ],
)
def test_a_paid_amount_that_is_not_whole_fen_of_cny_is_unreadable(
    amount: dict[str, object],
) -> None:
    with pytest.raises(UnreadableAmount):
        mapping.payment_result(_trade("SUCCESS", amount=amount))


def test_success_time_is_read_in_china_time() -> None:
    result = mapping.payment_result(_trade("SUCCESS", success_time="2026-12-03T15:04:05+08:00"))
    assert result.created_at == datetime(2026, 12, 3, 7, 4, 5, tzinfo=UTC)
    assert (
        mapping.rfc3339(datetime(2026, 12, 3, 7, 4, 5, tzinfo=UTC)) == "2026-12-03T15:04:05+08:00"
    )


@pytest.mark.parametrize(
    ("status", "neutral", "reason"),
    [
        ("SUCCESS", "succeeded", None),
        ("PROCESSING", "pending", None),
        ("CLOSED", "failed", "CLOSED"),
        ("ABNORMAL", "failed", "ABNORMAL"),
    ],
)
def test_refund_statuses(status: str, neutral: str, reason: str | None) -> None:
    refund = {
        "refund_id": "50300000000001",
        "out_refund_no": "ref_01",
        "out_trade_no": "att_01ABCDEF",
        "status": status,
        "amount": {"total": 2599, "refund": 500, "currency": "CNY"},
    }
    result = mapping.refund_result(refund)
    assert (result.status, result.failure_reason, result.amount) == (neutral, reason, 500)
    assert (result.refund_ref, result.provider_ref) == ("50300000000001", "att_01ABCDEF")
    assert result.metadata == {"refund_id": "ref_01"}


def test_a_refund_notification_is_a_refund_event() -> None:
    notification = {
        "id": "EV-9",
        "event_type": "REFUND.SUCCESS",
        "create_time": "2026-12-03T15:00:00+08:00",
    }
    resource = {
        "out_trade_no": "att_01ABCDEF",
        "out_refund_no": "ref_01",
        "refund_id": "503",
        "refund_status": "SUCCESS",
        "amount": {"total": 2599, "refund": 2599, "payer_total": 2599, "payer_refund": 2599},
    }
    event = mapping.webhook_event(notification, resource)
    assert (event.event_id, event.payment) == ("EV-9", None)
    assert event.refund is not None
    assert (event.refund.status, event.refund.amount, event.refund.currency) == (
        "succeeded",
        2599,
        "CNY",
    )
