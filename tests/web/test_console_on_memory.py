"""The console and the database gauges on in-memory storage: wired by ``bootstrap.wire`` on
``orderguard.testing.InMemoryStorage``, driven over HTTP like on SQL storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orderguard.api.app import create_app
from orderguard.bootstrap import Container, wire
from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.services.console_users import ConsoleUsers, SessionPolicy
from orderguard.storage.ports import WebhookRecord
from orderguard.testing import InMemoryStorage
from tests.conftest import LOCAL_URL
from tests.factories import new_order
from tests.integration.conftest import memory_providers
from tests.web.shopfront import PASSWORD, csrf_of, log_in

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


@dataclass
class Console:
    client: httpx.AsyncClient
    container: Container
    stuck: Order
    waiting: Order
    flagged: Order
    fresh: Order


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    storage = InMemoryStorage()
    container = wire(Settings(public_url=LOCAL_URL), storage, memory_providers())
    stuck = new_order(reference="STUCK-1", at=NOW - 2 * HOUR)
    stuck.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW - HOUR)
    stuck.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=NOW - HOUR)
    waiting = new_order(at=NOW - 2 * HOUR)  # the shopper's 3-D Secure: not stuck
    waiting.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW - HOUR)
    waiting.move_to(OrderState.ACTION_REQUIRED, cause=Cause.API, at=NOW - HOUR)
    flagged = new_order(at=NOW - HOUR)
    flagged.flag(FlagReason.SHOPPER_REPORT, "where is my parcel?", cause=Cause.SHOPPER, at=NOW)
    fresh = new_order(at=NOW)
    async with storage() as uow:
        for order in (stuck, waiting, flagged, fresh):
            await uow.orders.add(order)
        await uow.webhooks.record(
            WebhookRecord(
                id="whk_1",
                provider="memory",
                event_id="evt_1",
                type="payment_intent.processing",
                headers={},
                body=b'{"marker": "raw-body-on-memory"}',
                received_at=NOW - HOUR,
                order_id=stuck.id,
            )
        )
        await uow.commit()
    await ConsoleUsers(storage.console, SessionPolicy()).add("olga", PASSWORD, "operator")
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        yield Console(client, container, stuck, waiting, flagged, fresh)
    await container.close()


async def test_a_user_logs_in_and_sees_the_counts_and_queues(console: Console) -> None:
    client = console.client
    refused = await log_in(client, "olga", "wrong password")
    logged_in = await log_in(client, "olga")
    dashboard = await client.get("/console")
    stuck = await client.get("/console/stuck")
    flagged = await client.get("/console/flagged")

    assert refused.status_code == 401
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/console"
    assert dashboard.status_code == 200
    assert 'id="stuck-count"><a href="/console/stuck">1</a>' in dashboard.text
    assert 'id="flagged-count"><a href="/console/flagged">1</a>' in dashboard.text
    assert '<th scope="row">received</th><td class="num">2</td>' in dashboard.text
    assert console.stuck.id in stuck.text and console.waiting.id not in stuck.text
    assert stuck.text.count("/console/orders/ord_") == 1
    assert console.flagged.id in flagged.text and "where is my parcel?" in flagged.text
    assert flagged.text.count("/console/orders/ord_") == 1


async def test_an_order_page_search_and_an_action_on_memory(console: Console) -> None:
    client = console.client
    await log_in(client, "olga")

    page = await client.get(f"/console/orders/{console.stuck.id}")
    found = await client.get("/console/search", params={"q": "STUCK-1"})
    detail = await client.get(f"/console/orders/{console.fresh.id}")
    cancelled = await client.post(
        f"/console/orders/{console.fresh.id}/cancel", data={"csrf": csrf_of(detail.text)}
    )

    assert page.status_code == 200 and "raw-body-on-memory" in page.text
    assert "payment_unknown" in page.text
    assert found.status_code == 303
    assert found.headers["location"] == f"/console/orders/{console.stuck.id}"
    assert cancelled.status_code == 303
    async with console.container.storage() as uow:
        order = await uow.orders.get(console.fresh.id)
        timeline = await uow.orders.timeline(console.fresh.id)
    assert order is not None and order.state is OrderState.CANCELLED
    assert (timeline[-1].actor, timeline[-1].cause) == ("olga", Cause.SUPPORT)


async def test_the_database_gauges_and_readiness_read_memory_storage(console: Console) -> None:
    metrics = await console.client.get("/metrics")
    ready = await console.client.get("/readyz")

    assert metrics.status_code == 200
    assert 'orderguard_stuck_orders{state="payment_unknown"} 1.0' in metrics.text
    assert 'orderguard_stuck_orders{state="payment_pending"} 0.0' in metrics.text
    assert 'orderguard_orders{state="action_required"} 1.0' in metrics.text
    assert 'orderguard_flagged_orders{reason="shopper_report"} 1.0' in metrics.text
    assert "orderguard_database_up 1.0" in metrics.text
    checks = {c["name"]: c["status"] for c in ready.json()["checks"]}
    assert checks["database"] == "pass" and checks["schema"] == "pass"
    assert checks["worker"] == "fail", "no worker has beaten on this storage"
