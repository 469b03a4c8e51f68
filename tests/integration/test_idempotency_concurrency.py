"""G2 under concurrency, over real HTTP: one key, one order — however many arrive at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from orderguard.api.server import running_server
from orderguard.bootstrap import build_app, wire
from tests.conftest import open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings, memory_providers

CONCURRENT = 50


@pytest.fixture(params=["postgresql", "sqlite"])
async def base_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    storage = await open_storage(url)
    app = build_app(container=wire(api_settings(), storage, memory_providers()))
    async with running_server(app) as base:
        yield base
    await storage.close()


async def test_fifty_concurrent_requests_with_one_key_make_exactly_one_order(
    base_url: str,
) -> None:
    body, headers = order_body(), key()
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/orders", json=body, headers=headers) for _ in range(CONCURRENT))
        )
        listed = (await client.get("/v1/orders", params={"limit": 200})).json()["data"]
    assert len(listed) == 1
    order_id = listed[0]["id"]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 201, 409}, statuses
    created = [r for r in responses if r.status_code in {200, 201}]
    assert created, statuses
    assert {r.json()["id"] for r in created} == {order_id}
    assert sum(1 for r in created if "idempotent-replayed" not in r.headers) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert int(conflict.headers["retry-after"]) >= 1


async def test_one_merchant_reference_under_many_keys_makes_one_order(base_url: str) -> None:
    body = order_body()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/orders", json=body, headers=key()) for _ in range(20))
        )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 19}, statuses
    winner = next(r for r in responses if r.status_code == 201).json()["id"]
    named = {r.json()["order_id"] for r in responses if r.status_code == 409}
    assert named == {winner}
