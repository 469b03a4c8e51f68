"""What the wallets' contract harnesses share (:mod:`.alipay_harness`,
:mod:`.wechatpay_harness`): each adapter against its own sandbox over real HTTP, the
sandbox's ``/ledger`` as the oracle, and the simulated shopper acting where a real one
would (Alipay's cashier pages, a scanned WeChat Pay QR code).

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
import time
from typing import Any

import httpx
import pytest

from orderguard.providers.base import (
    ChargeRequest,
    PaymentOutcome,
    PaymentResult,
    ProviderRejected,
    RefundResult,
)
from tests.providers.harness import Harness, charge_request

#: A signature of the right length that no key made.
FORGED_SIGNATURE = base64.b64encode(bytes(256)).decode()


async def until(found: Any, what: str, timeout_s: float = 10.0) -> Any:
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
