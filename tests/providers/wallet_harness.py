"""The contract harnesses of the wallets: each adapter against its own sandbox over real
HTTP, the sandbox's ``/ledger`` as the oracle, and the simulated shopper acting where a
real one would (Alipay's cashier pages, a scanned WeChat Pay QR code).

What a wallet's protocol answers differently from a card's is stated here, once: every
payment awaits the shopper (ACTION_REQUIRED) until paid; a trade the shopper has not
reached does not exist at the wallet yet (pending, never failed); a decline is the shopper
giving up (Alipay) or a payment error (WeChat Pay); a cancel is a close; ``amount=None``
refunds the whole total, so after a partial refund the wallet refuses it; a notification
is signed by the wallet and, for Alipay, carries no time the adapter checks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import httpx
import pytest

from orderguard.providers.alipay import keys, signing
from orderguard.providers.alipay import mapping as alipay_mapping
from orderguard.providers.alipay.methods import PAGE
from orderguard.providers.alipay.plugin import PROFILE as ALIPAY_PROFILE
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.server import run_sandbox as run_alipay
from orderguard.providers.base import (
    ChargeRequest,
    PaymentOutcome,
    PaymentResult,
    ProviderRejected,
    RefundResult,
)
from orderguard.providers.serving import serve_in_thread
from orderguard.providers.wechatpay import mapping as wechat_mapping
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.methods import NATIVE
from orderguard.providers.wechatpay.plugin import PROFILE as WECHAT_PROFILE
from orderguard.providers.wechatpay.sandbox.identity import Identity, load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox as run_wechatpay
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from orderguard.providers.wechatpay.signing import signed_headers
from tests.providers.alipay_support import KeyPairs, NotifyReceiver, make_provider
from tests.providers.expect import Answer
from tests.providers.harness import FakeClock, Harness, Signed, charge_request
from tests.providers.receiver import Receiver

#: A signature of the right length that no key made.
FORGED_SIGNATURE = base64.b64encode(bytes(256)).decode()


async def _until(found: Any, what: str, timeout_s: float = 10.0) -> Any:
    """Poll ``found()`` until it answers something (a notification arriving)."""
    deadline = time.monotonic() + timeout_s
    while (answer := found()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert answer is not None, f"no {what} within {timeout_s} s"
    return answer


class WalletHarness(Harness):
    """What both wallets share."""

    currency = "CNY"
    new_outcome = PaymentOutcome.ACTION_REQUIRED
    method: str
    http: httpx.AsyncClient

    def request(self, **fields: Any) -> ChargeRequest:
        return charge_request(method=self.method, currency="CNY", **fields)

    def challenge_request(self, **fields: Any) -> ChargeRequest:
        return self.request(**fields)

    async def ledger(self) -> dict[str, Any]:
        response = await self.http.get("/ledger")
        response.raise_for_status()
        book: dict[str, Any] = response.json()
        return book

    async def refund_rest(self, provider_ref: str, *, left: int, key: str) -> RefundResult:
        """``amount=None`` is the whole total at a wallet: refused after a partial refund
        (and nothing moves), so the rest is refunded by its amount."""
        before = await self.refunded(provider_ref)
        with pytest.raises(ProviderRejected):
            await self.provider.refund(provider_ref, amount=None, idempotency_key=f"{key}-all")
        assert await self.refunded(provider_ref) == before
        return await self.provider.refund(provider_ref, amount=left, idempotency_key=key)

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.http.aclose()


class AlipayHarness(WalletHarness):
    """:class:`AlipayProvider` against the Alipay sandbox; the shopper uses its cashier."""

    capabilities = ALIPAY_PROFILE.capabilities
    method = PAGE
    decline_code = cancel_code = alipay_mapping.CLOSED
    succeeded_event = "trade_status.TRADE_SUCCESS"
    #: The answer carries Alipay's cumulative ``refund_fee`` beside the metadata.
    refund_metadata_added = frozenset({"refund_fee"})
    unknown_ref = "pay_does_not_exist"
    #: A reference Alipay does not hold is a trade the shopper has not opened yet.
    unknown_retrieval = Answer(
        "a trade not created yet, awaiting the shopper",
        lambda r: (
            r.outcome is PaymentOutcome.ACTION_REQUIRED
            and r.metadata.get(alipay_mapping.STATE) == alipay_mapping.NOT_CREATED
        ),
    )
    #: Closing a trade Alipay does not hold answers closed (the cashier refuses the URL
    #: after its ``time_expire``).
    unknown_cancel = Answer(
        "closed, marked not created",
        lambda r: (
            r.outcome is PaymentOutcome.FAILED
            and r.decline_code == alipay_mapping.CLOSED
            and r.metadata.get(alipay_mapping.STATE) == alipay_mapping.NOT_CREATED
        ),
    )
    #: No search by order and no listing: ``find_payments`` without references and
    #: ``list_successful_charges`` answer an empty list (the adapter's documented answer).
    unoffered = Answer("an empty list", lambda found: found == [])
    #: Alipay resends a notification for a day and signs no time the adapter checks: an
    #: old notification that verifies is accepted (its ``notify_id`` de-duplicates it).
    stale_webhook = Answer(
        "the verified event, dated by its old notify_time",
        lambda event: (
            event.payment is not None
            and (datetime.now(UTC) - event.created_at).total_seconds() >= 399
        ),
    )

    def __init__(self, url: str, pairs: KeyPairs, notify_url: str, receiver: NotifyReceiver):
        self.clock = FakeClock()
        self.pairs, self.receiver = pairs, receiver
        self.provider = make_provider(url, pairs, notify_url=notify_url)
        self.http = httpx.AsyncClient(base_url=url, verify=False)  # plain HTTP: no CA store

    async def _cashier(self, created: PaymentResult) -> str | None:
        """The shopper opens the cashier URL and logs in: the trade's number, or ``None``
        when the cashier refuses (the trade is closed)."""
        assert created.redirect_url is not None
        page = await self.http.get(created.redirect_url)
        if page.status_code == 400:
            return None
        assert page.status_code == 200, page.text
        found = re.search(r"action='/cashier/([A-Za-z0-9_]+)/login'", page.text)
        assert found is not None, page.text
        login = await self.http.post(f"/cashier/{found[1]}/login")
        return found[1] if login.status_code == 200 else None

    async def follow(self, created: PaymentResult) -> str:
        ref = await self._cashier(created)
        assert ref is not None, "the cashier refused a new payment"
        return ref

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        ref = await self._cashier(created)
        if ref is None:
            return  # closed: the cashier says so
        if approved:
            paid = await self.http.post(f"/cashier/{ref}/pay")
            assert paid.status_code in (200, 303, 400), paid.text  # 400: closed meanwhile
            return
        gave_up = await self.http.post(f"/admin/trades/{ref}/abandon")
        assert gave_up.status_code in (200, 409), gave_up.text

    async def pay(self, created: PaymentResult) -> PaymentResult:
        await self.complete_action(created, approved=True)
        assert created.provider_ref is not None
        return await self.provider.retrieve_payment(created.provider_ref)

    async def declined(self, **fields: Any) -> PaymentResult:
        created = await self.provider.create_payment(self.request(**fields))
        await self.complete_action(created, approved=False)
        assert created.provider_ref is not None
        return await self.provider.retrieve_payment(created.provider_ref)

    async def _trades(self) -> list[dict[str, Any]]:
        trades: list[dict[str, Any]] = (await self.ledger())["trades"]
        return trades

    async def successful_charges(self, order_id: str) -> int:
        charged = ("TRADE_SUCCESS", "TRADE_FINISHED")
        return sum(
            1
            for t in await self._trades()
            if unquote(t["passback_params"] or "") == order_id
            and (t["status"] in charged or t["refunded_fen"] > 0)
        )

    async def refunded(self, provider_ref: str) -> int:
        return sum(
            t["refunded_fen"] for t in await self._trades() if t["out_trade_no"] == provider_ref
        )

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        """The sandbox's own TRADE_SUCCESS notification, signed again by Alipay's key as
        sent at ``timestamp`` (its ``notify_time``)."""

        def arrived() -> dict[str, str] | None:
            forms = [dict(parse_qsl(body.decode())) for body in self.receiver.bodies]
            return next(
                (
                    f
                    for f in forms
                    if f["out_trade_no"] == provider_ref and f["trade_status"] == "TRADE_SUCCESS"
                ),
                None,
            )

        form: dict[str, str] = await _until(arrived, f"notification of {provider_ref}")
        form["notify_time"] = alipay_mapping.alipay_time(datetime.fromtimestamp(timestamp, UTC))
        form["sign"] = signing.sign(signing.notification_content(form), self.pairs.alipay)
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return urlencode(form).encode(), headers

    def tamper(self, body: bytes) -> bytes:
        return body.replace(b"total_amount=", b"total_amount=9", 1)

    def unsigned(self, body: bytes, headers: dict[str, str]) -> Signed:
        form = dict(parse_qsl(body.decode()))
        del form["sign"]
        return urlencode(form).encode(), headers

    def badly_signed(self, body: bytes, headers: dict[str, str]) -> Signed:
        form = {**dict(parse_qsl(body.decode())), "sign": FORGED_SIGNATURE}
        return urlencode(form).encode(), headers


class WechatPayHarness(WalletHarness):
    """:class:`WechatPayProvider` against the WeChat Pay sandbox; the shopper scans the
    QR code and pays in the app (the sandbox's shopper routes)."""

    capabilities = WECHAT_PROFILE.capabilities
    method = NATIVE
    decline_code = "payerror"
    cancel_code = "closed"
    succeeded_event = "TRANSACTION.SUCCESS"
    unknown_ref = "att_does_not_exist"
    #: WeChat Pay answers ``ORDER_NOT_EXIST`` for an order the shopper has not scanned:
    #: ACTION_REQUIRED, marked not yet created, never failed.
    unknown_retrieval = Answer(
        "a trade not created yet, awaiting the shopper",
        lambda r: (
            r.outcome is PaymentOutcome.ACTION_REQUIRED and wechat_mapping.is_not_yet_created(r)
        ),
    )

    def __init__(
        self, url: str, identity: Identity, provider: WechatPayProvider, receiver: Receiver
    ) -> None:
        self.clock = FakeClock()
        self.identity, self.receiver, self.provider = identity, receiver, provider
        self.http = httpx.AsyncClient(base_url=url, verify=False)  # plain HTTP: no CA store

    async def _shopper(self, ref: str, action: str) -> bool:
        """The shopper acts on the trade; ``False`` when the app refuses (closed, paid)."""
        response = await self.http.post(f"/sandbox/shopper/{ref}/{action}")
        assert response.status_code in (200, 409), response.text
        return response.status_code == 200

    async def follow(self, created: PaymentResult) -> str:
        scanned = await self.http.post("/sandbox/scan", json={"code_url": created.redirect_url})
        assert scanned.status_code == 200, scanned.text
        ref: str = scanned.json()["out_trade_no"]
        return ref

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        assert created.provider_ref is not None
        if await self._shopper(created.provider_ref, "scan"):
            await self._shopper(created.provider_ref, "pay" if approved else "fail")

    async def pay(self, created: PaymentResult) -> PaymentResult:
        await self.complete_action(created, approved=True)
        assert created.provider_ref is not None
        return await self.provider.retrieve_payment(created.provider_ref)

    async def declined(self, **fields: Any) -> PaymentResult:
        created = await self.provider.create_payment(self.request(**fields))
        await self.complete_action(created, approved=False)
        assert created.provider_ref is not None
        return await self.provider.retrieve_payment(created.provider_ref)

    async def _trades(self) -> list[dict[str, Any]]:
        trades: list[dict[str, Any]] = (await self.ledger())["trades"]
        return trades

    async def successful_charges(self, order_id: str) -> int:
        return sum(
            1
            for t in await self._trades()
            if t["trade_state"] in ("SUCCESS", "REFUND")
            and json.loads(t["attach"] or "{}").get("order_id") == order_id
        )

    async def refunded(self, provider_ref: str) -> int:
        return sum(
            int(t["refunded"]) for t in await self._trades() if t["out_trade_no"] == provider_ref
        )

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        """The sandbox's own TRANSACTION.SUCCESS notification, signed again with its key
        as sent at ``timestamp``."""

        async def sent_id() -> str | None:
            sent = (await self.ledger())["notifications"]
            return next(
                (
                    n["id"]
                    for n in sent
                    if n["out_trade_no"] == provider_ref and n["event_type"] == self.succeeded_event
                ),
                None,
            )

        event_id = await sent_id()
        assert event_id is not None, f"the sandbox notified nothing for {provider_ref}"
        body: bytes = await _until(
            lambda: next(
                (b for b, _ in self.receiver.deliveries if json.loads(b)["id"] == event_id), None
            ),
            f"notification {event_id}",
        )
        key, serial = self.identity.public_key_key, self.identity.public_key_id
        return body, signed_headers(key, serial, body, timestamp=timestamp)

    def tamper(self, body: bytes) -> bytes:
        notification = json.loads(body)
        notification["resource"]["ciphertext"] = notification["resource"]["ciphertext"][::-1]
        return json.dumps(notification, separators=(",", ":")).encode()

    def unsigned(self, body: bytes, headers: dict[str, str]) -> Signed:
        return body, {k: v for k, v in headers.items() if k.lower() != "wechatpay-signature"}

    def badly_signed(self, body: bytes, headers: dict[str, str]) -> Signed:
        return body, {**headers, "Wechatpay-Signature": FORGED_SIGNATURE}


@dataclass(frozen=True)
class AlipayLab:
    """A running Alipay sandbox, its keys and the shop's notify receiver."""

    url: str
    pairs: KeyPairs
    notify_url: str
    receiver: NotifyReceiver


@dataclass(frozen=True)
class WechatPayLab:
    """A running WeChat Pay sandbox, its identity and the shop's notification receiver."""

    url: str
    identity_dir: Path
    notify_url: str
    receiver: Receiver


@contextmanager
def alipay_lab(directory: Path) -> Iterator[AlipayLab]:
    """The Alipay sandbox with new keys in ``directory`` and a notify receiver. Started
    once for the contract run: every test makes its own trades, and reads only those."""
    pairs = KeyPairs(keys.new_private_key(), keys.new_private_key())
    pairs.write(directory)
    receiver = NotifyReceiver()
    config = AlipayConfig(data_dir=str(directory), retry_delays_s=(0.05, 0.1))
    with serve_in_thread(receiver.app()) as notify, run_alipay(config) as url:
        yield AlipayLab(url, pairs, f"{notify}/notify", receiver)


@contextmanager
def wechatpay_lab(identity_dir: Path) -> Iterator[WechatPayLab]:
    """The WeChat Pay sandbox with an identity made in ``identity_dir`` and a receiver;
    started once for the contract run, like :func:`alipay_lab`."""
    load_identity(identity_dir)
    receiver = Receiver()
    config = WechatConfig(identity_dir, retry_delays_s=(0.05, 0.1))
    with serve_in_thread(receiver.app()) as hooks, run_wechatpay(config) as url:
        yield WechatPayLab(url, identity_dir, f"{hooks}/hooks", receiver)


def alipay_harness(lab: AlipayLab) -> AlipayHarness:
    """A harness with its own adapter and clients at the shared sandbox."""
    return AlipayHarness(lab.url, lab.pairs, lab.notify_url, lab.receiver)


def wechatpay_harness(lab: WechatPayLab) -> WechatPayHarness:
    """A harness with an adapter for the sandbox's merchant, wired as the plug-in wires it
    (``tests/providers/test_wechatpay_adapter.py`` builds it through the plug-in) but with
    no certificate store to load for plain HTTP (it costs ~0.1 s a test)."""
    identity = load_identity(lab.identity_dir)
    provider = WechatPayProvider(
        mchid=identity.mchid,
        appid=identity.appid,
        merchant_serial_no=identity.merchant_serial_no,
        private_key_pem=identity.path("merchant_key.pem").read_text(),
        apiv3_key=identity.apiv3_key,
        verifying_keys={identity.public_key_id: identity.public_key_key.public_key()},
        notify_url=lab.notify_url,
        base_url=lab.url,
        timeout_s=2.0,
        transport=httpx.AsyncHTTPTransport(verify=False),
    )
    return WechatPayHarness(lab.url, identity, provider, lab.receiver)
