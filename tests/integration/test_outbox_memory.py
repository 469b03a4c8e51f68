"""On in-memory storage (``orderguard.testing``) the outbox relay runs like on SQL: an order
placed through the API reaches a merchant's endpoint (a real HTTP receiver on loopback),
signed, in the worker's round; a dead letter is replayed and delivered; support reads the
same bookkeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from orderguard.bootstrap import Container, build_app, new_worker, wire
from orderguard.domain.delivery import DeliveryState
from orderguard.services.outbox import OutboxSupport, outbox_health
from orderguard.testing import InMemoryStorage
from tests.conftest import LOCAL_URL
from tests.factories import key, order_body
from tests.integration.conftest import api_settings, memory_providers
from tests.outbox_kit import add_endpoint, receiver


@pytest.fixture
async def memory() -> AsyncIterator[InMemoryStorage]:
    storage = InMemoryStorage()
    yield storage
    await storage.close()


async def place(container: Container) -> str:
    """An order placed through the API; its id."""
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        answer = await client.post("/v1/orders", json=order_body(), headers=key())
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_the_workers_relay_delivers_an_order_to_a_merchant_endpoint_on_memory(
    memory: InMemoryStorage,
) -> None:
    settings = api_settings(outbox_timeout_s=5.0)
    async with receiver() as hook:
        endpoint, secret = await add_endpoint(memory, hook.url)
        container = wire(settings, memory, memory_providers())
        order_id = await place(container)
        await new_worker(container).round()
    [(headers, body)] = hook.accepted
    Webhook(secret).verify(body, headers)
    document = orjson.loads(body)
    assert (document["type"], document["data"]["order_id"]) == ("order.received", order_id)
    assert headers["webhook-id"] == document["id"]
    (delivery,) = await OutboxSupport(memory).deliveries_of_order(order_id)
    assert (delivery.sink, delivery.state, delivery.attempts) == (
        endpoint.sink,
        DeliveryState.DELIVERED,
        1,
    )
    health = await outbox_health(settings, memory)
    assert [(h.sink, h.undelivered, h.dead_letters) for h in health] == [(endpoint.sink, 0, 0)]


async def test_a_dead_letter_on_memory_is_replayed_and_then_delivered(
    memory: InMemoryStorage,
) -> None:
    settings = api_settings(outbox_timeout_s=5.0, outbox_max_attempts=1)
    support = OutboxSupport(memory)
    async with receiver(fail_first=1) as hook:
        endpoint, _ = await add_endpoint(memory, hook.url)
        container = wire(settings, memory, memory_providers())
        order_id = await place(container)
        await new_worker(container).round()
        (dead,) = await support.dead_letters()
        assert (dead.event.order_id, dead.sink, dead.last_error) == (
            order_id,
            endpoint.sink,
            f"DeliveryFailed: {hook.url} answered 500 (body not kept: private endpoint)",
        )
        assert [h.dead_letters for h in await outbox_health(settings, memory)] == [1]
        assert await support.replay_dead() == 1
        await new_worker(container).round()
    assert hook.calls == 2 and len(hook.accepted) == 1
    assert await support.dead_letters() == []
    attempts = (await support.event(dead.event.id)).attempts
    assert [str(a.outcome) for a in attempts] == ["dead", "delivered"]
