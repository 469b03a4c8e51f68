"""G2 kept by the Idempotency-Key alone: the orders here carry no merchant reference, so the
unique reference cannot be what makes one order (test_idempotency_concurrency.py sends one).
A key whose first request is still charging answers 409 with Retry-After, and nothing else."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from orderguard.api.server import running_server
from orderguard.bootstrap import build_app, wire
from orderguard.providers.base import ChargeRequest, PaymentResult
from orderguard.providers.memory import InMemoryProvider
from tests.conftest import open_storage
from tests.factories import key, order_body
from tests.integration.conftest import Api, api_settings, memory_providers
from tests.integration.test_payments_api import VISA

CONCURRENT = 50
#: How long a condition may take before the test fails: far from the milliseconds it takes.
DEADLINE_S = 30.0


@pytest.fixture(params=["postgresql", "sqlite"])
async def base_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    storage = await open_storage(url)
    app = build_app(container=wire(api_settings(), storage, memory_providers()))
    async with running_server(app) as base:
        yield base
    await storage.close()


@pytest.mark.parametrize("charging", [False, True], ids=["answered-at-once", "charging"])
async def test_fifty_concurrent_requests_with_one_key_and_no_reference_make_one_order(
    base_url: str, charging: bool
) -> None:
    body, headers = order_body(merchant_reference=None), key()
    if charging:
        body["payment"] = {"method": VISA}
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/orders", json=body, headers=headers) for _ in range(CONCURRENT))
        )
        listed = (await client.get("/v1/orders", params={"limit": 200})).json()["data"]
    statuses = Counter(r.status_code for r in responses)
    assert len(listed) == 1, f"{len(listed)} orders for one key: {statuses}"
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert {r.json()["id"] for r in created} == {listed[0]["id"]}
    assert sum(1 for r in created if "idempotent-replayed" not in r.headers) == 1


class Held(InMemoryProvider):
    """Charges, then holds its answer until the test lets it go."""

    def __init__(self) -> None:
        super().__init__(name="memory")
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        result = await super().create_payment(request)
        self.called.set()
        await self.release.wait()
        return result


async def test_a_key_whose_first_request_is_still_charging_answers_409_and_adds_nothing(
    api: Api,
) -> None:
    held = Held()
    api.container.payments.providers.primary.provider = held
    body, headers = order_body(merchant_reference=None, payment={"method": VISA}), key()
    first = asyncio.create_task(api.client.post("/v1/orders", json=body, headers=headers))
    await asyncio.wait_for(held.called.wait(), DEADLINE_S)  # the first is at the provider

    duplicate = await api.client.post("/v1/orders", json=body, headers=headers)

    assert duplicate.status_code == 409, duplicate.text
    assert int(duplicate.headers["retry-after"]) >= 1
    assert duplicate.headers["content-type"].startswith("application/problem+json")
    held.release.set()
    answered = await asyncio.wait_for(first, DEADLINE_S)
    assert answered.status_code == 201, answered.text
    assert answered.json()["state"] == "paid"
    replay = await api.client.post("/v1/orders", json=body, headers=headers)
    assert (replay.status_code, replay.headers.get("idempotent-replayed")) == (201, "true")
    assert replay.json()["id"] == answered.json()["id"]
    listed = (await api.client.get("/v1/orders", params={"limit": 10})).json()["data"]
    assert [o["id"] for o in listed] == [answered.json()["id"]]
    assert len(held.payments) == 1, "one charge for one key"
