"""A payment request tells the provider when the payment expires: when orderguard would
cancel the order as abandoned, so a wallet's trade closes itself at the same time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orderguard.bootstrap import build_app, wire
from orderguard.providers.base import ChargeRequest
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.stripe import testcards
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import Api, api_settings, memory_providers

THREE_DS = testcards.NEEDS_AUTHENTICATION


@pytest.fixture
async def api_45(sqlite_url: str) -> AsyncIterator[Api]:
    """The app on SQLite, giving shoppers 45 minutes to finish a step outside the shop."""
    storage = await open_storage(sqlite_url)
    providers = memory_providers()
    container = wire(api_settings(action_expiry_minutes=45), storage, providers)
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        provider = providers.primary.provider
        assert isinstance(provider, InMemoryProvider)
        yield Api(client, container, provider)
    await storage.close()


def _request_for(provider: InMemoryProvider, order_id: str) -> ChargeRequest:
    (request,) = [p.request for p in provider.payments.values() if p.request.order_id == order_id]
    return request


async def test_the_provider_is_told_the_payment_expires_when_the_order_would_be_cancelled(
    api_45: Api,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    body = order_body(payment={"method": THREE_DS})
    placed = await api_45.client.post("/v1/orders", json=body, headers=key())
    after = datetime.now(UTC)
    assert placed.status_code == 201, placed.text
    assert placed.json()["state"] == "action_required"
    expires_at = _request_for(api_45.provider, placed.json()["id"]).expires_at
    assert expires_at is not None
    assert before + timedelta(minutes=45) <= expires_at <= after + timedelta(minutes=45)
    assert expires_at.microsecond == 0  # whole seconds: what the wallets write


async def test_a_resent_attempt_carries_the_same_expiry(api_45: Api) -> None:
    placed = await api_45.client.post(
        "/v1/orders", json=order_body(payment={"method": THREE_DS}), headers=key()
    )
    order_id = placed.json()["id"]
    first = _request_for(api_45.provider, order_id)
    async with api_45.container.storage() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    await api_45.container.payments.send(order, order.attempts[0])
    assert _request_for(api_45.provider, order_id).expires_at == first.expires_at
