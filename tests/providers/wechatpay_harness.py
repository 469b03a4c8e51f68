"""The contract harness of WeChat Pay: :class:`WechatPayProvider` against the WeChat Pay
sandbox, the shopper scanning its QR codes, its ``/ledger`` the oracle
(:mod:`.wallet_harness`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from orderguard.providers.base import PaymentOutcome, PaymentProvider, PaymentResult, RefundResult
from orderguard.providers.serving import serve_in_thread
from orderguard.providers.wechatpay import mapping as wechat_mapping
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.methods import NATIVE
from orderguard.providers.wechatpay.plugin import PROFILE as WECHAT_PROFILE
from orderguard.providers.wechatpay.sandbox.identity import Identity, load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox as run_wechatpay
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from orderguard.providers.wechatpay.signing import signed_headers
from tests.providers.expect import Answer
from tests.providers.harness import IMPATIENT_S, FakeClock, HttpFaults, Signed
from tests.providers.receiver import Receiver
from tests.providers.wallet_harness import FORGED_SIGNATURE, WalletHarness, until


@dataclass(frozen=True)
class WechatPayLab:
    """A running WeChat Pay sandbox, its identity and the shop's notification receiver."""

    url: str
    identity_dir: Path
    notify_url: str
    receiver: Receiver


class WechatPayHarness(HttpFaults, WalletHarness):
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

    lookup_error: ClassVar[dict[str, Any]] = {"query_system_error": 1}

    async def _admin(self, **body: Any) -> None:
        response = await self.http.post("/sandbox/admin", json=body)
        assert response.status_code == 200, response.text

    async def hold_refunds(self) -> None:
        await self._admin(settle_refunds=False)

    async def end_refund(self, made: RefundResult, *, succeeded: bool) -> None:
        status = "SUCCESS" if succeeded else "CLOSED"
        await self._admin(settle_refund=made.metadata["refund_id"], refund_status=status)

    async def slow_lookups(self) -> PaymentProvider:
        await self._late()
        return wechatpay_provider(self.identity, self.url, self.notify_url, IMPATIENT_S)

    async def mend(self) -> None:
        await self.faults()
        await self._admin(settle_refunds=True)

    def __init__(
        self,
        url: str,
        identity: Identity,
        provider: WechatPayProvider,
        receiver: Receiver,
        notify_url: str,
    ) -> None:
        self.clock = FakeClock()
        self.identity, self.receiver, self.provider = identity, receiver, provider
        self.url, self.notify_url = url, notify_url
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
        body: bytes = await until(
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


@contextmanager
def wechatpay_lab(identity_dir: Path) -> Iterator[WechatPayLab]:
    """The WeChat Pay sandbox with an identity made in ``identity_dir`` and a receiver;
    started once for the contract run, like :func:`alipay_lab`."""
    load_identity(identity_dir)
    receiver = Receiver()
    config = WechatConfig(identity_dir, retry_delays_s=(0.05, 0.1))
    with serve_in_thread(receiver.app()) as hooks, run_wechatpay(config) as url:
        yield WechatPayLab(url, identity_dir, f"{hooks}/hooks", receiver)


def wechatpay_harness(lab: WechatPayLab) -> WechatPayHarness:
    """A harness with an adapter for the sandbox's merchant, wired as the plug-in wires it
    (``tests/providers/test_wechatpay_adapter.py`` builds it through the plug-in) but with
    no certificate store to load for plain HTTP (it costs ~0.1 s a test)."""
    identity = load_identity(lab.identity_dir)
    provider = wechatpay_provider(identity, lab.url, lab.notify_url, 2.0)
    return WechatPayHarness(lab.url, identity, provider, lab.receiver, lab.notify_url)


def wechatpay_provider(
    identity: Identity, url: str, notify_url: str, timeout_s: float
) -> WechatPayProvider:
    """The adapter for the sandbox's merchant, reading within ``timeout_s``."""
    return WechatPayProvider(
        mchid=identity.mchid,
        appid=identity.appid,
        merchant_serial_no=identity.merchant_serial_no,
        private_key_pem=identity.path("merchant_key.pem").read_text(),
        apiv3_key=identity.apiv3_key,
        verifying_keys={identity.public_key_id: identity.public_key_key.public_key()},
        notify_url=notify_url,
        base_url=url,
        timeout_s=timeout_s,
        transport=httpx.AsyncHTTPTransport(verify=False),
    )
