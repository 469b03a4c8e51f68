"""Notifications: the sandbox posts signed forms until it reads exactly ``success``; the
adapter verifies them (signature, app, seller) and maps them, ``notify_id`` as event id."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from orderguard.providers.alipay import signing
from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.plugin import PROFILE
from orderguard.providers.base import InvalidWebhook, PaymentOutcome
from tests.providers import alipay_support
from tests.providers.alipay_support import (
    SELLER_ID,
    KeyPairs,
    NotifyReceiver,
    alipay_request,
    ledger,
    open_cashier,
    shopper,
)

# the shared fixtures, by name
admin = alipay_support.admin
key_pairs = alipay_support.key_pairs
sandbox_url = alipay_support.sandbox_url
receiver = alipay_support.receiver
notify_url = alipay_support.notify_url
notifying_provider = alipay_support.notifying_provider


@pytest.fixture
def provider(notifying_provider: AlipayProvider) -> AlipayProvider:
    """The adapter, its notifications sent to :data:`receiver`."""
    return notifying_provider


async def _pay(provider: AlipayProvider, admin: httpx.AsyncClient, amount: int = 2599) -> str:
    created = await provider.create_payment(alipay_request(amount=amount))
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login", "pay")
    return created.provider_ref


async def test_a_payment_is_notified_and_the_notification_verifies(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    ref = await _pay(provider, admin)
    await receiver.wait_for(1)
    event = provider.parse_webhook(receiver.bodies[0], {})
    fields = dict(parse_qsl(receiver.bodies[0].decode()))
    assert event.event_id == fields["notify_id"]
    assert event.type == "trade_status.TRADE_SUCCESS"
    assert event.payment is not None
    assert (event.payment.provider_ref, event.payment.outcome, event.payment.amount) == (
        ref,
        PaymentOutcome.SUCCEEDED,
        2599,
    )
    assert provider.decode_webhook(receiver.bodies[0]) == event


async def test_notifications_are_retried_until_the_answer_is_exactly_success(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    receiver.replies = ["ok", "SUCCESS", "success\n"]
    await _pay(provider, admin)
    await receiver.wait_for(4)
    # the sandbox books the fourth answer just after the receiver has given it
    for _ in range(100):
        [delivery] = (await ledger(admin))["notifications"]
        if delivery["delivered"]:
            break
        await asyncio.sleep(0.05)
    assert (delivery["attempts"], delivery["delivered"]) == (4, True)
    ids = {dict(parse_qsl(body.decode()))["notify_id"] for body in receiver.bodies}
    assert len(ids) == 1  # a retry is the same notification: one event to de-duplicate


def test_the_reply_orderguard_gives_is_plain_success() -> None:
    reply = PROFILE.reply(duplicate=True)
    assert (reply.status, reply.media_type, reply.body) == (200, "text/plain", b"success")


async def test_a_refund_is_notified_with_its_cumulative_amount(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    ref = await _pay(provider, admin, amount=1000)
    await provider.refund(ref, amount=250, idempotency_key="rf_n1")
    await provider.refund(ref, amount=750, idempotency_key="rf_n2")
    await receiver.wait_for(3)
    events = [provider.parse_webhook(body, {}) for body in receiver.bodies]
    refunds = sorted((e.charge.amount_refunded, e.type) for e in events if e.charge is not None)
    assert refunds == [(250, "trade_status.TRADE_SUCCESS"), (1000, "trade_status.TRADE_CLOSED")]


async def test_closing_a_trade_is_notified_as_closed(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    created = await provider.create_payment(alipay_request())
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login")
    await provider.close_payment(created.provider_ref)
    await receiver.wait_for(1)
    event = provider.parse_webhook(receiver.bodies[0], {})
    assert event.payment is not None and event.payment.outcome is PaymentOutcome.FAILED


@pytest.fixture
async def one_notification(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> dict[str, str]:
    await _pay(provider, admin)
    await receiver.wait_for(1)
    return dict(parse_qsl(receiver.bodies[0].decode()))


def _resigned(fields: dict[str, str], pairs: KeyPairs, **changes: str) -> bytes:
    """The notification changed and signed again with Alipay's key (a genuine signature)."""
    changed = {**fields, **changes}
    changed["sign"] = signing.sign(signing.notification_content(changed), pairs.alipay)
    return urlencode(changed).encode()


async def test_a_tampered_notification_is_refused(
    provider: AlipayProvider, one_notification: dict[str, str]
) -> None:
    forged = urlencode({**one_notification, "total_amount": "0.01"}).encode()
    with pytest.raises(InvalidWebhook, match="signature"):
        provider.parse_webhook(forged, {})


async def test_a_notification_signed_by_another_key_is_refused(
    provider: AlipayProvider, one_notification: dict[str, str], key_pairs: KeyPairs
) -> None:
    fields = dict(one_notification)
    fields["sign"] = signing.sign(signing.notification_content(fields), key_pairs.app)
    with pytest.raises(InvalidWebhook, match="signature"):
        provider.parse_webhook(urlencode(fields).encode(), {})


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"app_id": "2021000000000000"}, "app"), ({"seller_id": "2088999999999999"}, "seller")],
)
async def test_a_notification_for_another_app_or_seller_is_refused(
    provider: AlipayProvider,
    one_notification: dict[str, str],
    key_pairs: KeyPairs,
    change: dict[str, str],
    reason: str,
) -> None:
    assert one_notification["seller_id"] == SELLER_ID
    with pytest.raises(InvalidWebhook, match=reason):
        provider.parse_webhook(_resigned(one_notification, key_pairs, **change), {})


async def test_a_notification_of_another_sign_type_or_no_form_is_refused(
    provider: AlipayProvider, one_notification: dict[str, str]
) -> None:
    with pytest.raises(InvalidWebhook, match="RSA2"):
        provider.parse_webhook(urlencode({**one_notification, "sign_type": "RSA"}).encode(), {})
    with pytest.raises(InvalidWebhook):
        provider.parse_webhook(b"\xff\xfe", {})
    with pytest.raises(InvalidWebhook):
        provider.decode_webhook(b"notify_id=1")


async def test_a_genuine_notification_of_another_amount_than_asked_is_refused(
    provider: AlipayProvider, one_notification: dict[str, str], key_pairs: KeyPairs
) -> None:
    assert one_notification["total_amount"] == "25.99"
    changed = _resigned(one_notification, key_pairs, total_amount="0.01")
    with pytest.raises(InvalidWebhook, match="reports 1 CNY"):
        provider.parse_webhook(changed, {})
