"""The sandbox delivers its webhooks to orderguard's inbox over real HTTP.

orderguard is served by uvicorn on a port chosen first, so that the sandbox can be told
where to post (``/v1/webhooks/sandbox``, as :func:`orderguard.bootstrap._sandbox` wires
it). The shopper approves 3-D Secure on the hosted page and never comes back: only the
webhook can tell orderguard, and every delivery is duplicated by the sandbox.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.api.server import reserve_port, running_server
from orderguard.bootstrap import build_app, wire
from orderguard.config import Settings
from orderguard.providers.stripe.sandbox.server import run_sandbox
from orderguard.providers.stripe.sandbox.service import SandboxConfig
from orderguard.services.providers import Providers
from tests.conftest import open_storage
from tests.e2e.payment_harness import (
    THREE_DS,
    WEBHOOK_SECRET,
    BreakerClock,
    Sandbox,
    Shop,
    provider_slot,
    transitions,
)

pytestmark = pytest.mark.timeout(60)

FORM = re.compile(r'<form method="post" action="([^"]+)">')


@pytest.fixture
def port() -> int:
    return reserve_port()


@pytest.fixture
def box(tmp_path: Path, port: int) -> Iterator[Sandbox]:
    config = SandboxConfig(
        db_path=str(tmp_path / "sandbox.db"),
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=f"http://127.0.0.1:{port}/v1/webhooks/sandbox",
    )
    with run_sandbox(config) as url:
        yield Sandbox("sandbox", url)


@pytest.fixture
async def shop(database_url: str, box: Sandbox, port: int) -> AsyncIterator[Shop]:
    settings = Settings(database_url=database_url, public_url=f"http://127.0.0.1:{port}")
    storage = await open_storage(database_url)
    container = wire(settings, storage, Providers([provider_slot(settings, box)]))
    try:
        async with (
            running_server(build_app(container=container), port=port) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield Shop(client, container, url, BreakerClock())
    finally:
        await container.close()


async def eventually_paid(shop: Shop, order_id: str) -> dict[str, Any]:
    for _ in range(200):
        detail = await shop.order(order_id)
        if detail["state"] == "paid":
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never became paid: {detail['state']}")


async def delivered(box: Sandbox, event_type: str) -> list[dict[str, Any]]:
    for _ in range(200):
        events = [e for e in (await box.ledger())["events"] if e["type"] == event_type]
        if events and all(e["_delivery"]["state"] == "delivered" for e in events):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_type} was never delivered")


async def test_3ds_approved_at_the_provider_pays_the_order_by_webhook_alone(
    shop: Shop, box: Sandbox
) -> None:
    await box.set_faults(webhook_duplicate=1.0)
    placed = await shop.placed(THREE_DS)
    assert placed.answer["state"] == "action_required"
    redirect = placed.answer["next_action"]["redirect_url"]
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(redirect)
        [approve] = [a for a in FORM.findall(page.text) if a.endswith("/approve")]
        pressed = await browser.post(box.url + approve)
    assert pressed.status_code == 303  # the shopper closes the tab: no return to the shop

    detail = await eventually_paid(shop, placed.id)
    [change] = [e for e in transitions(detail) if e["to_state"] == "paid"]
    assert (change["from_state"], change["cause"]) == ("action_required", "webhook")
    assert len(await box.charges(placed.id)) == 1
    assert "webhook_duplicated" in await box.fault_kinds()

    [succeeded] = await delivered(box, "payment_intent.succeeded")
    async with shop.container.storage() as uow:
        records = await uow.webhooks.recent(limit=50)
    stored = [r for r in records if r.event_id == succeeded["id"]]
    assert len(stored) == 1  # delivered twice, stored once
    assert stored[0].provider == "sandbox" and stored[0].order_id == placed.id
    assert stored[0].processed_at is not None and stored[0].last_error is None
    assert shop.container.inbox.rejected == 0
