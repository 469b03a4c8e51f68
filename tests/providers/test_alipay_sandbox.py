"""The Alipay adapter against its sandbox: cashier redirect, the trade that exists only
once the shopper logs in, the active query, close and refund rules, idempotency and
faults, with the sandbox's /ledger as the oracle."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from alipay import AliPay

from orderguard.providers.alipay import keys
from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.errors import AmountMismatch, UnverifiedAnswer
from orderguard.providers.alipay.mapping import Asked
from orderguard.providers.base import (
    PaymentOutcome,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    UnchargeableAmount,
)
from tests.providers import alipay_support
from tests.providers.alipay_support import (
    APP_ID,
    KeyPairs,
    alipay_request,
    ledger,
    make_provider,
    open_cashier,
    shopper,
)

# the shared fixtures, by name
admin = alipay_support.admin
key_pairs = alipay_support.key_pairs
provider = alipay_support.provider
sandbox_url = alipay_support.sandbox_url


async def _paid_trade(
    provider: AlipayProvider, admin: httpx.AsyncClient, amount: int = 2599
) -> str:
    created = await provider.create_payment(alipay_request(amount=amount))
    assert created.redirect_url is not None
    assert (await open_cashier(created.redirect_url)).status_code == 200
    assert created.provider_ref is not None
    await shopper(admin, created.provider_ref, "login", "pay")
    return created.provider_ref


async def test_a_payment_is_a_signed_cashier_redirect_carrying_the_attempt(
    provider: AlipayProvider, sandbox_url: str
) -> None:
    expires = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    request = alipay_request(
        amount=2599, idempotency_key="orderguard-pay_01JX", expires_at=expires, order_id="ord_1"
    )
    result = await provider.create_payment(request)
    assert result.outcome is PaymentOutcome.ACTION_REQUIRED
    assert result.provider_ref == "orderguard_pay_01JX"
    assert result.metadata == {"next_action": "redirect", "alipay_state": "not_created"}
    assert (result.order_id, result.attempt_id) == (request.order_id, request.attempt_id)
    assert result.redirect_url is not None
    url = urlsplit(result.redirect_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{sandbox_url}/gateway.do"
    params = dict(parse_qsl(url.query))
    assert (params["method"], params["sign_type"], params["charset"]) == (
        "alipay.trade.page.pay",
        "RSA2",
        "utf-8",
    )
    assert params["return_url"] == "https://shop.test/orders/return"
    biz = json.loads(params["biz_content"])
    assert biz == {
        "out_trade_no": "orderguard_pay_01JX",
        "total_amount": "25.99",
        "subject": f"Order {request.order_id}",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "time_expire": "2026-12-03 18:00:00",
        "passback_params": "ord_1",
    }


async def test_a_mobile_payment_uses_the_wap_cashier(provider: AlipayProvider) -> None:
    result = await provider.create_payment(alipay_request(method="alipay_wap"))
    assert result.redirect_url is not None
    params = dict(parse_qsl(urlsplit(result.redirect_url).query))
    biz = json.loads(params["biz_content"])
    assert params["method"] == "alipay.trade.wap.pay"
    assert (biz["product_code"], biz["quit_url"]) == (
        "QUICK_WAP_WAY",
        "https://shop.test/orders/return",
    )


@pytest.mark.parametrize(
    ("currency", "amount"), [("USD", 2599), ("CNY", 0), ("CNY", 10_000_000_001)]
)
async def test_what_alipay_cannot_charge_is_refused_before_anything_is_made(
    provider: AlipayProvider, currency: str, amount: int
) -> None:
    with pytest.raises(UnchargeableAmount):
        await provider.create_payment(alipay_request(currency=currency, amount=amount))


async def test_a_method_alipay_does_not_take_is_rejected(provider: AlipayProvider) -> None:
    with pytest.raises(ProviderRejected):
        await provider.create_payment(alipay_request(method="pm_card_visa"))


async def test_the_trade_exists_only_once_the_shopper_logs_in(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    created = await provider.create_payment(alipay_request())
    ref = created.provider_ref
    assert ref is not None and created.redirect_url is not None
    before = await provider.retrieve_payment(ref)
    assert (before.outcome, before.metadata) == (
        PaymentOutcome.ACTION_REQUIRED,
        {"alipay_state": "not_created"},
    )
    await open_cashier(created.redirect_url)
    opened = await provider.retrieve_payment(ref)
    assert opened.metadata == {"alipay_state": "not_created"}  # the page alone creates nothing
    assert (await ledger(admin))["trades"] == []
    await shopper(admin, ref, "login")
    waiting = await provider.retrieve_payment(ref)
    assert waiting.outcome is PaymentOutcome.ACTION_REQUIRED
    assert "alipay_state" not in waiting.metadata
    await shopper(admin, ref, "pay")
    paid = await provider.retrieve_payment(ref)
    assert (paid.outcome, paid.amount, paid.currency) == (PaymentOutcome.SUCCEEDED, 2599, "CNY")


async def test_find_payments_queries_the_given_references_and_skips_uncreated_ones(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    paid = await _paid_trade(provider, admin)
    never = (await provider.create_payment(alipay_request())).provider_ref
    assert never is not None
    found = await provider.find_payments("ord", references=[paid, never])
    assert [(r.provider_ref, r.outcome) for r in found] == [(paid, PaymentOutcome.SUCCEEDED)]
    assert await provider.find_payments("ord") == []


async def test_a_paid_amount_other_than_asked_is_unknown(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin, amount=2599)
    with pytest.raises(AmountMismatch):
        await provider.retrieve_payment(ref, asked=Asked(2600, "CNY"))


async def test_the_same_out_trade_no_opened_twice_is_one_trade(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    request = alipay_request()
    first = await provider.create_payment(request)
    second = await provider.create_payment(request)
    assert first.provider_ref == second.provider_ref and first.provider_ref is not None
    for created in (first, second):
        assert created.redirect_url is not None
        await open_cashier(created.redirect_url)
        await shopper(admin, first.provider_ref, "login")
    await shopper(admin, first.provider_ref, "pay")
    trades = (await ledger(admin))["trades"]
    assert [(t["out_trade_no"], t["status"], t["total_fen"]) for t in trades] == [
        (first.provider_ref, "TRADE_SUCCESS", 2599)
    ]


async def test_the_cashier_refuses_a_url_whose_signature_was_tampered_with(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    created = await provider.create_payment(alipay_request(amount=2599))
    assert created.redirect_url is not None
    forged = created.redirect_url.replace("25.99", "0.01")
    page = await open_cashier(forged)
    assert page.status_code == 400 and "isv.invalid-signature" in page.text
    assert (await ledger(admin))["prepared"] == []


async def test_the_cashier_refuses_a_login_after_the_payment_expired(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    created = await provider.create_payment(alipay_request(expires_at=soon))
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await admin.post("/admin/clock", json={"advance_s": 600})
    response = await admin.post(f"/admin/trades/{created.provider_ref}/login")
    assert response.status_code == 409 and response.json()["sub_code"] == "ACQ.TRADE_HAS_CLOSE"
    result = await provider.retrieve_payment(created.provider_ref)
    assert result.metadata == {"alipay_state": "not_created"}


async def test_an_unpaid_trade_closes_by_itself_at_its_expiry(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    created = await provider.create_payment(alipay_request(expires_at=soon))
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login")
    await admin.post("/admin/clock", json={"advance_s": 600})
    result = await provider.retrieve_payment(created.provider_ref)
    assert (result.outcome, result.decline_code) == (PaymentOutcome.FAILED, "trade_closed")


# close


async def test_the_same_out_trade_no_for_another_amount_is_a_key_conflict(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    request = alipay_request(amount=100)
    first = await provider.create_payment(request)
    altered = alipay_request(amount=999, attempt_id=request.attempt_id)
    with pytest.raises(ProviderKeyConflict):
        await provider.create_payment(altered)
    assert first.provider_ref is not None and first.redirect_url is not None
    await open_cashier(first.redirect_url)
    await shopper(admin, first.provider_ref, "login", "pay")
    paid = await provider.retrieve_payment(first.provider_ref)  # checked against 100, not 999
    assert (paid.outcome, paid.amount) == (PaymentOutcome.SUCCEEDED, 100)
    assert [t["total_fen"] for t in (await ledger(admin))["trades"]] == [100]


async def test_closing_a_waiting_trade_fails_it_and_a_second_close_says_the_same(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    created = await provider.create_payment(alipay_request())
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login")
    first = await provider.close_payment(created.provider_ref)
    second = await provider.close_payment(created.provider_ref)
    assert first.outcome is second.outcome is PaymentOutcome.FAILED
    assert (second.decline_code, second.retry_with_other_method) == ("trade_closed", False)
    assert (await ledger(admin))["trades"][0]["status"] == "TRADE_CLOSED"
    refused = await admin.post(f"/admin/trades/{created.provider_ref}/pay")
    assert refused.status_code == 409


async def test_closing_a_trade_that_does_not_exist_counts_as_closed_and_marked(
    provider: AlipayProvider,
) -> None:
    created = await provider.create_payment(alipay_request())
    assert created.provider_ref is not None
    result = await provider.close_payment(created.provider_ref)
    assert result.outcome is PaymentOutcome.FAILED
    assert result.metadata == {"alipay_state": "not_created"}


async def test_a_close_refused_because_the_trade_was_paid_answers_succeeded(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    result = await provider.close_payment(ref)
    assert (result.outcome, result.amount) == (PaymentOutcome.SUCCEEDED, 2599)
    assert (await ledger(admin))["trades"][0]["status"] == "TRADE_SUCCESS"


async def test_cancel_is_close(provider: AlipayProvider, admin: httpx.AsyncClient) -> None:
    ref = await _paid_trade(provider, admin)
    assert (await provider.cancel_payment(ref)).outcome is PaymentOutcome.SUCCEEDED


# refunds


async def test_partial_refunds_then_the_rest_close_the_trade_as_refunded(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin, amount=2599)
    first = await provider.refund(
        ref, amount=1000, idempotency_key="rf_1", metadata={"refund_id": "r1"}
    )
    assert (first.refund_ref, first.amount, first.currency, first.status) == (
        "rf_1",
        1000,
        "CNY",
        "succeeded",
    )
    assert first.metadata["refund_id"] == "r1"
    await provider.refund(ref, amount=1599, idempotency_key="rf_2")
    book = await ledger(admin)
    assert [(r["out_request_no"], r["fen"]) for r in book["refunds"]] == [
        ("rf_1", 1000),
        ("rf_2", 1599),
    ]
    assert (book["trades"][0]["status"], book["trades"][0]["refunded_fen"]) == (
        "TRADE_CLOSED",
        2599,
    )
    after = await provider.retrieve_payment(ref)
    assert (after.outcome, after.metadata["alipay_state"]) == (PaymentOutcome.SUCCEEDED, "refunded")


async def test_the_same_out_request_no_twice_is_one_refund(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await provider.refund(ref, amount=500, idempotency_key="rf_same")
    again = await provider.refund(ref, amount=500, idempotency_key="rf_same")
    assert again.amount == 500
    assert [r["fen"] for r in (await ledger(admin))["refunds"]] == [500]
    with pytest.raises(ProviderKeyConflict):
        await provider.refund(ref, amount=600, idempotency_key="rf_same")


async def test_refunds_above_the_amount_paid_are_refused(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin, amount=1000)
    await provider.refund(ref, amount=600, idempotency_key="rf_a")
    with pytest.raises(ProviderRejected, match="REFUND_FEE_ERR"):
        await provider.refund(ref, amount=401, idempotency_key="rf_b")
    assert [r["fen"] for r in (await ledger(admin))["refunds"]] == [600]


async def test_a_full_refund_refunds_the_trade_amount(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin, amount=4321)
    result = await provider.refund(ref, amount=None, idempotency_key="rf_full")
    assert result.amount == 4321
    assert [r["fen"] for r in (await ledger(admin))["refunds"]] == [4321]


async def test_only_a_paid_trade_is_refunded(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    created = await provider.create_payment(alipay_request())
    assert created.redirect_url is not None and created.provider_ref is not None
    with pytest.raises(ProviderRejected, match="TRADE_NOT_EXIST"):
        await provider.refund(created.provider_ref, amount=100, idempotency_key="rf_x")
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login")
    with pytest.raises(ProviderRejected, match="TRADE_STATUS_ERROR"):
        await provider.refund(created.provider_ref, amount=100, idempotency_key="rf_y")
    assert (await ledger(admin))["refunds"] == []


async def test_a_finished_trade_is_no_longer_refunded(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await shopper(admin, ref, "finish")
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED
    with pytest.raises(ProviderRejected, match="TRADE_HAS_FINISHED"):
        await provider.refund(ref, amount=100, idempotency_key="rf_late")


async def test_the_refund_query_tells_a_made_refund_from_one_never_made(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await provider.refund(ref, amount=700, idempotency_key="rf_q")
    made = await provider.refund_status(ref, "rf_q")
    assert made is not None and (made.amount, made.status) == (700, "succeeded")
    assert await provider.refund_status(ref, "rf_never") is None


# faults


async def test_a_system_error_on_the_query_is_unavailable_then_it_answers(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await admin.post("/admin/faults", json={"system_error": 1})
    with pytest.raises(ProviderUnavailable, match=r"ACQ\.SYSTEM_ERROR"):
        await provider.retrieve_payment(ref)
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED


async def test_a_server_error_on_a_refund_is_unknown_and_its_repeat_refunds_once(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await admin.post("/admin/faults", json={"lose_answer": 1})
    with pytest.raises(ProviderOutcomeUnknown) as lost:
        await provider.refund(ref, amount=300, idempotency_key="rf_lost")
    assert lost.value.safe_to_retry
    await provider.refund(ref, amount=300, idempotency_key="rf_lost")
    assert [r["fen"] for r in (await ledger(admin))["refunds"]] == [300]


async def test_an_answer_whose_signature_does_not_verify_is_not_believed(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await _paid_trade(provider, admin)
    await admin.post("/admin/faults", json={"bad_sign": 1})
    with pytest.raises(UnverifiedAnswer):
        await provider.retrieve_payment(ref)


async def test_answers_signed_by_another_key_are_not_believed(
    sandbox_url: str, key_pairs: KeyPairs, admin: httpx.AsyncClient
) -> None:
    stranger = make_provider(sandbox_url, key_pairs, alipay_public_key=key_pairs.app.public_key())
    try:
        with pytest.raises(UnverifiedAnswer):
            await stranger.retrieve_payment("anything")
    finally:
        await stranger.aclose()


async def test_a_request_from_another_app_is_refused_by_the_gateway(
    sandbox_url: str, key_pairs: KeyPairs
) -> None:
    other = make_provider(sandbox_url, key_pairs, app_id="2021000000000000")
    try:
        with pytest.raises(ProviderRejected, match=r"isv\.invalid-app-id"):
            await other.retrieve_payment("anything")
    finally:
        await other.aclose()


async def test_a_gateway_that_cannot_be_reached_is_unavailable(key_pairs: KeyPairs) -> None:
    gone = make_provider("http://127.0.0.1:9", key_pairs)
    try:
        with pytest.raises(ProviderUnavailable):
            await gone.retrieve_payment("anything")
        with pytest.raises(ProviderUnavailable):
            await gone.close_payment("anything")
    finally:
        await gone.aclose()


# python-alipay-sdk (3.4.0) against the sandbox: an independent client of the same gateway


def _sdk_at(sandbox_url: str, pairs: KeyPairs) -> AliPay:
    sdk = AliPay(
        appid=APP_ID,
        app_private_key_string=keys.private_pem(pairs.app),
        alipay_public_key_string=keys.public_pem(pairs.alipay.public_key()),
        sign_type="RSA2",
    )
    sdk._gateway = f"{sandbox_url}/gateway.do"
    return sdk


async def test_the_sdk_opens_the_cashier_and_verifies_the_sandbox_answers(
    sandbox_url: str, key_pairs: KeyPairs, admin: httpx.AsyncClient
) -> None:
    sdk = _sdk_at(sandbox_url, key_pairs)
    query = sdk.api_alipay_trade_page_pay(subject="sdk", out_trade_no="sdk_1", total_amount="9.90")
    page = await open_cashier(f"{sandbox_url}/gateway.do?{query}")
    assert page.status_code == 200, page.text
    await shopper(admin, "sdk_1", "login", "pay")
    answer = await asyncio.to_thread(sdk.api_alipay_trade_query, out_trade_no="sdk_1")
    assert (answer["code"], answer["trade_status"], answer["total_amount"]) == (
        "10000",
        "TRADE_SUCCESS",
        "9.90",
    )
    missing = await asyncio.to_thread(sdk.api_alipay_trade_query, out_trade_no="sdk_none")
    assert (missing["code"], missing["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")


async def test_the_cashier_refuses_an_out_trade_no_alipay_does_not_take(
    sandbox_url: str, key_pairs: KeyPairs, admin: httpx.AsyncClient
) -> None:
    sdk = _sdk_at(sandbox_url, key_pairs)
    query = sdk.api_alipay_trade_page_pay(subject="s", out_trade_no="订单-1", total_amount="1.00")
    page = await open_cashier(f"{sandbox_url}/gateway.do?{query}")
    assert page.status_code == 400 and "ACQ.INVALID_PARAMETER" in page.text
    assert (await ledger(admin))["prepared"] == []
