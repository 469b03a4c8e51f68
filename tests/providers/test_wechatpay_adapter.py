"""The WeChat Pay adapter against its sandbox: orders, the active query, the simulated
shopper, notifications, idempotency and trouble."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from orderguard.providers.base import (
    InvalidWebhook,
    PaymentOutcome,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
    UnchargeableAmount,
)
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.lab import LAB, sandbox_account
from orderguard.providers.wechatpay.mapping import (
    NEXT_ACTION,
    TRADE_STATE,
    is_not_yet_created,
)
from orderguard.providers.wechatpay.plugin import build
from tests.providers.receiver import Receiver
from tests.providers.wechatpay_kit import *  # noqa: F403 (fixtures)
from tests.providers.wechatpay_kit import admin, charge, ledger, shopper


async def test_a_native_order_answers_a_qr_code_and_the_trade_does_not_exist_yet(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(amount=1234)
    created = await provider.create_payment(request)
    assert created.outcome is PaymentOutcome.ACTION_REQUIRED
    assert created.provider_ref == request.attempt_id
    assert created.metadata[NEXT_ACTION] == "qr"
    assert (created.redirect_url or "").startswith("weixin://wxpay/bizpayurl?pr=")
    queried = await provider.retrieve_payment(request.attempt_id)
    assert queried.outcome is PaymentOutcome.ACTION_REQUIRED
    assert is_not_yet_created(queried)


def test_the_order_expires_when_the_request_says(provider: WechatPayProvider) -> None:
    expires = datetime(2026, 12, 3, 10, 0, 7, tzinfo=UTC)
    body = provider.order_body(charge(expires_at=expires))
    assert body["time_expire"] == "2026-12-03T18:00:07+08:00"


async def test_scanned_then_paid_the_query_says_succeeded_with_the_amount_and_order(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(amount=1234)
    created = await provider.create_payment(request)
    async with httpx.AsyncClient(base_url=wechat_sandbox) as client:
        scanned = await client.post("/sandbox/scan", json={"code_url": created.redirect_url})
    assert scanned.json()["trade_state"] == "NOTPAY"
    waiting = await provider.retrieve_payment(request.attempt_id)
    assert (waiting.outcome, waiting.metadata[TRADE_STATE]) == (
        PaymentOutcome.ACTION_REQUIRED,
        "NOTPAY",
    )
    await shopper(wechat_sandbox, request.attempt_id, "pay")
    paid = await provider.retrieve_payment(request.attempt_id)
    assert paid.outcome is PaymentOutcome.SUCCEEDED
    assert (paid.amount, paid.currency) == (1234, "CNY")
    assert paid.order_id == request.order_id


async def test_an_h5_order_redirects_and_opening_the_page_creates_the_trade(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(method="wechatpay_h5")
    created = await provider.create_payment(request)
    assert created.metadata[NEXT_ACTION] == "redirect"
    assert is_not_yet_created(await provider.retrieve_payment(request.attempt_id))
    async with httpx.AsyncClient() as client:
        assert (await client.get(str(created.redirect_url))).status_code == 200
    assert (await provider.retrieve_payment(request.attempt_id)).metadata[TRADE_STATE] == "NOTPAY"


async def test_the_payment_notification_verifies_and_names_the_paid_trade(
    provider: WechatPayProvider, wechat_sandbox: str, receiver: Receiver
) -> None:
    request = charge(amount=880)
    await provider.create_payment(request)
    await shopper(wechat_sandbox, request.attempt_id, "scan")
    await shopper(wechat_sandbox, request.attempt_id, "pay")
    await receiver.wait_for(1)
    body, headers = receiver.deliveries[0]
    event = provider.parse_webhook(body, headers)
    assert event.type == "TRANSACTION.SUCCESS"
    assert event.payment is not None
    assert (event.payment.provider_ref, event.payment.amount) == (request.attempt_id, 880)
    assert event.payment.outcome is PaymentOutcome.SUCCEEDED


async def test_a_refused_notification_is_sent_again_until_answered_2xx(
    provider: WechatPayProvider, wechat_sandbox: str, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    request = charge()
    await provider.create_payment(request)
    await shopper(wechat_sandbox, request.attempt_id, "scan")
    await shopper(wechat_sandbox, request.attempt_id, "pay")
    await receiver.wait_for(1)
    sent = (await ledger(wechat_sandbox))["notifications"]
    assert [n["statuses"] for n in sent] == [[500, 500, 204]]


async def test_the_same_order_twice_is_one_trade_with_one_code(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge()
    first = await provider.create_payment(request)
    second = await provider.create_payment(request)
    assert first.redirect_url == second.redirect_url
    trades = (await ledger(wechat_sandbox))["trades"]
    assert [t["out_trade_no"] for t in trades] == [request.attempt_id]


async def test_the_same_out_trade_no_with_another_amount_is_a_key_conflict(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(amount=100)
    await provider.create_payment(request)
    with pytest.raises(ProviderKeyConflict):
        await provider.create_payment(charge(amount=200, attempt_id=request.attempt_id))


async def test_an_order_repeated_after_payment_answers_the_paid_trade(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(amount=300)
    await provider.create_payment(request)
    await shopper(wechat_sandbox, request.attempt_id, "scan")
    await shopper(wechat_sandbox, request.attempt_id, "pay")
    again = await provider.create_payment(request)
    assert (again.outcome, again.amount) == (PaymentOutcome.SUCCEEDED, 300)


async def test_only_cny_is_charged_and_nothing_is_sent_otherwise(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    with pytest.raises(UnchargeableAmount):
        await provider.create_payment(charge(currency="EUR"))
    assert (await ledger(wechat_sandbox))["trades"] == []


async def test_closing_an_unscanned_order_fails_it_for_good(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge()
    await provider.create_payment(request)
    closed = await provider.close_payment(request.attempt_id)
    assert closed.outcome is PaymentOutcome.FAILED
    again = await provider.close_payment(request.attempt_id)
    assert again.outcome is PaymentOutcome.FAILED
    queried = await provider.retrieve_payment(request.attempt_id)
    assert (queried.outcome, queried.metadata[TRADE_STATE]) == (PaymentOutcome.FAILED, "CLOSED")
    assert (await shopper(wechat_sandbox, request.attempt_id, "scan")).status_code == 409


async def test_closing_a_trade_paid_in_the_meantime_answers_succeeded(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge(amount=450)
    await provider.create_payment(request)
    await shopper(wechat_sandbox, request.attempt_id, "scan")
    await shopper(wechat_sandbox, request.attempt_id, "pay")
    closed = await provider.cancel_payment(request.attempt_id)
    assert (closed.outcome, closed.amount) == (PaymentOutcome.SUCCEEDED, 450)
    trade = (await ledger(wechat_sandbox))["trades"][0]
    assert trade["trade_state"] == "SUCCESS"


async def test_closing_an_unknown_trade_is_refused(provider: WechatPayProvider) -> None:
    with pytest.raises(ProviderRejected):
        await provider.close_payment("att_neverplaced01")


async def test_a_bank_failure_is_a_failed_payment_the_shopper_may_retry_otherwise(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge()
    await provider.create_payment(request)
    await shopper(wechat_sandbox, request.attempt_id, "scan")
    await shopper(wechat_sandbox, request.attempt_id, "fail")
    failed = await provider.retrieve_payment(request.attempt_id)
    assert (failed.outcome, failed.decline_code) == (PaymentOutcome.FAILED, "payerror")
    assert failed.retry_with_other_method


async def test_a_server_error_to_the_query_is_trouble_not_an_outcome(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    await admin(wechat_sandbox, fail_next=1, status=500)
    with pytest.raises(ProviderServerError):
        await provider.retrieve_payment("att_whatever0001")


async def test_a_lost_answer_to_an_order_is_unknown_and_to_a_query_unavailable(
    identity_dir: Path, wechat_sandbox: str
) -> None:
    impatient = build(sandbox_account(identity_dir, wechat_sandbox, "http://127.0.0.1:9/"), 0.2)
    await admin(wechat_sandbox, delay_s=0.4)
    try:
        with pytest.raises(ProviderOutcomeUnknown):
            await impatient.create_payment(charge())
        with pytest.raises(ProviderUnavailable):
            await impatient.retrieve_payment("att_whatever0001")
    finally:
        await impatient.aclose()


async def _delivered(
    provider: WechatPayProvider, sandbox: str, receiver: Receiver
) -> tuple[bytes, dict[str, str]]:
    request = charge()
    await provider.create_payment(request)
    await shopper(sandbox, request.attempt_id, "scan")
    await shopper(sandbox, request.attempt_id, "pay")
    await receiver.wait_for(1)
    return receiver.deliveries[0]


async def test_a_tampered_probe_or_stale_notification_is_refused(
    provider: WechatPayProvider, wechat_sandbox: str, receiver: Receiver
) -> None:
    body, headers = await _delivered(provider, wechat_sandbox, receiver)
    tampered = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS ")
    probe = {
        **headers,
        "wechatpay-signature": "WECHATPAY/SIGNTEST/" + headers["wechatpay-signature"],
    }
    stale = {**headers, "wechatpay-timestamp": str(int(headers["wechatpay-timestamp"]) - 301)}
    for refused_body, refused_headers in ((tampered, headers), (body, probe), (body, stale)):
        with pytest.raises(InvalidWebhook):
            provider.parse_webhook(refused_body, refused_headers)


async def test_a_stored_notification_decodes_without_its_headers_but_garbage_does_not(
    provider: WechatPayProvider, wechat_sandbox: str, receiver: Receiver
) -> None:
    body, headers = await _delivered(provider, wechat_sandbox, receiver)
    assert provider.decode_webhook(body) == provider.parse_webhook(body, headers)
    notification = json.loads(body)
    notification["resource"]["ciphertext"] = notification["resource"]["ciphertext"][::-1]
    for garbage in (b"not json", json.dumps(notification).encode(), b'{"id": "EV-1"}'):
        with pytest.raises(InvalidWebhook):
            provider.decode_webhook(garbage)


async def test_the_lab_starts_a_sandbox_the_plugin_can_charge_at(
    tmp_path: Path, identity_dir: Path
) -> None:
    shutil.copytree(identity_dir, tmp_path / "wechatpay")  # keys take a while to make
    settings = SimpleNamespace(sandbox_db=str(tmp_path / "sandbox.db"))
    with ExitStack() as resources:
        account = LAB.start(settings, resources, "unused", "http://127.0.0.1:9/hooks")
        built = build(account, 2.0)
        try:
            created = await built.create_payment(charge())
        finally:
            await built.aclose()
    assert created.outcome is PaymentOutcome.ACTION_REQUIRED
    assert (tmp_path / "wechatpay" / "identity.json").exists()
