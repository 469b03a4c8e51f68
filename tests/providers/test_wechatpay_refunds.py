"""Refunds at the WeChat Pay sandbox: partial, the rest, once per out_refund_no, never above
what was paid, never of an unpaid trade; their notifications; the REFUND trade state."""

from __future__ import annotations

import pytest

from orderguard.providers.base import PaymentOutcome, ProviderRejected
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.mapping import TRADE_STATE
from tests.providers.receiver import Receiver
from tests.providers.wechatpay_kit import *  # noqa: F403 (fixtures)
from tests.providers.wechatpay_kit import admin, charge, ledger, shopper


async def _paid(provider: WechatPayProvider, sandbox: str, amount: int) -> str:
    request = charge(amount=amount)
    await provider.create_payment(request)
    await shopper(sandbox, request.attempt_id, "scan")
    await shopper(sandbox, request.attempt_id, "pay")
    return request.attempt_id


async def test_a_partial_refund_then_the_rest_each_once(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    ref = await _paid(provider, wechat_sandbox, 1000)
    first = await provider.refund(
        ref, amount=300, idempotency_key="k1", metadata={"refund_id": "ref_first001"}
    )
    assert (first.amount, first.currency, first.metadata["refund_id"]) == (
        300,
        "CNY",
        "ref_first001",
    )
    again = await provider.refund(
        ref, amount=300, idempotency_key="k1", metadata={"refund_id": "ref_first001"}
    )
    assert again.refund_ref == first.refund_ref
    rest = await provider.refund(
        ref, amount=700, idempotency_key="k2", metadata={"refund_id": "ref_second01"}
    )
    assert rest.amount == 700
    refunds = (await ledger(wechat_sandbox))["refunds"]
    assert sorted(r["amount"]["refund"] for r in refunds) == [300, 700]


async def test_a_refund_above_what_is_left_is_refused(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    ref = await _paid(provider, wechat_sandbox, 500)
    await provider.refund(
        ref, amount=400, idempotency_key="a", metadata={"refund_id": "ref_a00001"}
    )
    with pytest.raises(ProviderRejected):
        await provider.refund(
            ref, amount=101, idempotency_key="b", metadata={"refund_id": "ref_b00001"}
        )
    assert len((await ledger(wechat_sandbox))["refunds"]) == 1


async def test_a_refund_of_an_unpaid_trade_is_refused(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge()
    await provider.create_payment(request)
    with pytest.raises(ProviderRejected):
        await provider.refund(request.attempt_id, amount=None, idempotency_key="refund-x1")
    assert (await ledger(wechat_sandbox))["refunds"] == []


async def test_a_full_refund_turns_the_trade_to_refund_still_a_paid_outcome(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    ref = await _paid(provider, wechat_sandbox, 640)
    refund = await provider.refund(ref, amount=None, idempotency_key="refund-full01")
    assert (refund.amount, refund.metadata["refund_id"]) == (640, "refund-full01")
    trade = await provider.retrieve_payment(ref)
    assert (trade.outcome, trade.metadata[TRADE_STATE]) == (PaymentOutcome.SUCCEEDED, "REFUND")
    found = await provider.refund_by_number("refund-full01")
    assert found is not None and (found.status, found.amount) == ("succeeded", 640)


async def test_a_processing_refund_ends_by_notification(
    provider: WechatPayProvider, wechat_sandbox: str, receiver: Receiver
) -> None:
    ref = await _paid(provider, wechat_sandbox, 900)
    await receiver.wait_for(1)  # the payment's notification
    await admin(wechat_sandbox, settle_refunds=False)
    made = await provider.refund(
        ref, amount=250, idempotency_key="x", metadata={"refund_id": "ref_slow0001"}
    )
    assert made.status == "pending"
    await admin(wechat_sandbox, settle_refund="ref_slow0001", refund_status="ABNORMAL")
    await receiver.wait_for(2)
    event = provider.parse_webhook(*receiver.deliveries[1])
    assert event.type == "REFUND.ABNORMAL"
    assert event.refund is not None
    assert (event.refund.status, event.refund.amount) == ("failed", 250)
    assert event.refund.metadata["refund_id"] == "ref_slow0001"
