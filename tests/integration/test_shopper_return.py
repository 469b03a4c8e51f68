"""The shopper's return page cannot be used to spend the shop's provider rate limit (issue 15).

The provider here counts every question it is asked: the count is taken where the calls
arrive, not in our own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orderguard.bootstrap import Container, build_app, wire
from orderguard.providers.base import PaymentResult
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.shopper_return import ShopperReturn
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings

#: A card that sends the shopper to authenticate (3-D Secure).
THREE_DS = "pm_card_authenticationRequired"
#: Hits a stranger makes on one order's return link.
HITS = 100


class CountingProvider(InMemoryProvider):
    """The in-memory provider, counting the questions it is asked about payments."""

    def __init__(self) -> None:
        super().__init__()
        self.questions = 0

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        self.questions += 1
        return await super().retrieve_payment(provider_ref)

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        self.questions += 1
        return await super().find_payments(order_id)


class Clock:
    """Time that moves only when a test moves it (the return page's interval is 5 s)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Shop:
    """The app in-process, its wiring, and the counting provider behind it."""

    def __init__(self, client: httpx.AsyncClient, container: Container, provider: CountingProvider):
        self.client, self.container, self.provider = client, container, provider
        self.clock = Clock()
        container.shopper_return = ShopperReturn(
            container.recheck, clock=self.clock, interval=timedelta(seconds=5)
        )

    async def awaiting_authentication(self) -> tuple[dict[str, Any], str]:
        """An order whose shopper is off authenticating, and its return link's token."""
        body = {**order_body(), "payment": {"method": THREE_DS}}
        placed = await self.client.post("/v1/orders", json=body, headers=key())
        order: dict[str, Any] = placed.json()
        assert order["state"] == "action_required"
        return order, order["status_url"].split("token=")[1]

    async def come_back(self, order: dict[str, Any], token: str) -> httpx.Response:
        return await self.client.get(f"/orders/{order['id']}/return", params={"token": token})

    async def state(self, order: dict[str, Any]) -> str:
        state: str = (await self.client.get(f"/v1/orders/{order['id']}")).json()["state"]
        return state


@pytest.fixture(params=["sqlite", "postgresql"])
async def shop(request: pytest.FixtureRequest) -> AsyncIterator[Shop]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    storage = await open_storage(url)
    provider = CountingProvider()
    providers = Providers([ProviderSlot(provider, CircuitBreaker(failure_threshold=3))])
    container = wire(api_settings(), storage, providers)
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        yield Shop(client, container, provider)
    await storage.close()


async def test_a_hundred_concurrent_returns_ask_the_provider_once(shop: Shop) -> None:
    order, token = await shop.awaiting_authentication()
    asked_before = shop.provider.questions
    answers = await asyncio.gather(*(shop.come_back(order, token) for _ in range(HITS)))
    assert {a.status_code for a in answers} == {303}
    assert shop.provider.questions - asked_before == 1


async def test_a_hundred_returns_one_after_another_ask_the_provider_once(shop: Shop) -> None:
    order, token = await shop.awaiting_authentication()
    asked_before = shop.provider.questions
    for _ in range(HITS):
        back = await shop.come_back(order, token)
        assert back.headers["location"] == order["status_url"]
    assert shop.provider.questions - asked_before == 1


async def test_after_the_interval_the_return_asks_again_and_shows_the_new_state(
    shop: Shop,
) -> None:
    order, token = await shop.awaiting_authentication()
    await shop.come_back(order, token)
    shop.provider.complete_action(order["payment_attempts"][0]["provider_ref"], approved=True)
    for _ in range(HITS):  # within the interval: the recent answer, no new question
        await shop.come_back(order, token)
    asked_in_interval = shop.provider.questions
    assert await shop.state(order) == "action_required"

    shop.clock.now += timedelta(seconds=5)
    back = await shop.come_back(order, token)
    assert back.headers["location"] == order["status_url"]
    assert await shop.state(order) == "paid"
    assert shop.provider.questions == asked_in_interval + 1
    for _ in range(HITS):  # every attempt is final now: nothing left to ask
        await shop.come_back(order, token)
    assert shop.provider.questions == asked_in_interval + 1
    page = await shop.client.get(f"/orders/{order['id']}", params={"token": token})
    assert page.status_code == 200
    assert "Paid — thank you!" in page.text
