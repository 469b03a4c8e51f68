"""One harness per provider implementation, so the contract suite runs unchanged on each.

A harness gives the provider under test plus what only a test may do: set the provider's
clock, complete a 3-D Secure challenge, count charges in the provider's own ledger, and
sign a webhook the way that provider would.
"""

from __future__ import annotations

import time

import httpx

from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.webhooks import signed_delivery

#: The webhook secret every harness signs with.
SECRET = "whsec_contract_secret"
#: An API key the sandbox accepts.
API_KEY = "sk_test_contract"


class FakeClock:
    """Unix seconds a test can set; starts at the real time."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class SandboxHarness:
    """The sandbox over real HTTP, reached through :class:`StripeProvider`."""

    def __init__(self, base_url: str, clock: FakeClock) -> None:
        self.base_url = base_url
        self.clock = clock
        self.provider = StripeProvider(
            api_key=API_KEY, webhook_secret=SECRET, base_url=base_url, timeout_s=5, page_size=2
        )
        self.http = httpx.AsyncClient(base_url=base_url)

    async def complete_action(self, provider_ref: str, *, approved: bool) -> None:
        verb = "approve" if approved else "refuse"
        response = await self.http.post(f"/3ds/{provider_ref}/{verb}")
        if response.status_code == 409:  # the payment was cancelled: the page says so
            assert "cancelled" in response.text, response.text
            return
        assert response.status_code == 303, response.text

    async def ledger(self) -> dict[str, list[dict[str, object]]]:
        response = await self.http.get("/ledger")
        response.raise_for_status()
        book: dict[str, list[dict[str, object]]] = response.json()
        return book

    async def successful_charges(self, order_id: str) -> int:
        charges = (await self.ledger())["charges"]
        return sum(
            1
            for c in charges
            if c["status"] == "succeeded" and c["metadata"].get("order_id") == order_id  # type: ignore[attr-defined]
        )

    async def signed_webhook(
        self, provider_ref: str, *, timestamp: int
    ) -> tuple[bytes, dict[str, str]]:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        intent = (await self.http.get(f"/v1/payment_intents/{provider_ref}", headers=auth)).json()
        evt = objects.event("payment_intent.succeeded", intent, created=timestamp)
        return signed_delivery(evt, SECRET, timestamp=timestamp)

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.http.aclose()


class MemoryHarness:
    """The in-memory fake."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.provider = InMemoryProvider(webhook_secret=SECRET, clock=clock)

    async def complete_action(self, provider_ref: str, *, approved: bool) -> None:
        self.provider.complete_action(provider_ref, approved=approved)

    async def successful_charges(self, order_id: str) -> int:
        payments = self.provider.payments.values()
        return sum(1 for p in payments if p.charged_at and p.request.order_id == order_id)

    async def signed_webhook(
        self, provider_ref: str, *, timestamp: int
    ) -> tuple[bytes, dict[str, str]]:
        payment = self.provider.payments[provider_ref].result
        return self.provider.signed_webhook(
            "payment_intent.succeeded", timestamp=timestamp, payment=payment
        )

    async def aclose(self) -> None:
        await self.provider.aclose()
