"""The console and the database gauges on in-memory storage: wired by ``bootstrap.wire`` on
``orderguard.testing.InMemoryStorage``, driven over HTTP like on SQL storage. The outbox's
deliveries and reconciliation's exceptions are seeded through the unit of work, and the
console's notification and reconciliation pages and ``/metrics``' outbox and
reconciliation gauges read them there."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orderguard.bootstrap import Container, build_app, wire
from orderguard.config import Settings
from orderguard.domain.delivery import Delivery, DeliveryAttempt, DeliveryState, Outcome
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.services.console_users import ConsoleUsers, SessionPolicy
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.ports import ExceptionRecord, RunRecord, WebhookRecord
from orderguard.testing import InMemoryStorage
from tests.conftest import LOCAL_URL
from tests.factories import new_order
from tests.integration.conftest import memory_providers
from tests.outbox_kit import add_endpoint
from tests.reconcile_support import paid_order
from tests.web.shopfront import PASSWORD, csrf_of, log_in

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


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
    async with console_over(storage) as (client, container):
        yield Console(client, container, stuck, waiting, flagged, fresh)


@asynccontextmanager
async def console_over(
    storage: InMemoryStorage,
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """The app wired on ``storage``, with the operator olga, and a client talking to it."""
    container = wire(Settings(public_url=LOCAL_URL), storage, memory_providers())
    await ConsoleUsers(storage.console, SessionPolicy()).add("olga", PASSWORD, "operator")
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        yield client, container
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


#: Where the seeded endpoint would be (never called: the deliveries are seeded).
HOOK = "http://127.0.0.1:9/hook"
REFUSED = f"DeliveryFailed: {HOOK} answered 500"


@dataclass
class Records:
    client: httpx.AsyncClient
    storage: InMemoryStorage
    sink: str
    delivered: Delivery
    dead: Delivery


async def attempt_one(storage: InMemoryStorage, sink: str, *, works: bool) -> Delivery:
    """The relay's step, through ``uow.outbox``: claim the next due delivery at ``sink`` and
    record it delivered, or refused for the last time (a dead letter)."""
    now = datetime.now(UTC)
    async with storage() as uow:
        [claimed] = await uow.outbox.claim(sink, owner="seed", now=now, until=now + HOUR, limit=1)
        outcome, error = (Outcome.DELIVERED, None) if works else (Outcome.DEAD, REFUSED)
        attempt = DeliveryAttempt(claimed.event.id, sink, now, outcome, error, "seed", 5)
        if works:
            await uow.outbox.delivered(claimed, attempt=attempt)
        else:
            await uow.outbox.failed(claimed, attempt=attempt, retry_at=None)
        await uow.commit()
    return claimed


async def seed_reconciliation(storage: InMemoryStorage) -> None:
    """One applied run with three exceptions, one of them explained by a later run."""
    run = RunRecord("rec_1", "d" * 64, "settlement.csv", "memory", None, None, "{}", NOW)
    later = RunRecord("rec_2", "e" * 64, "next-day.csv", "memory", None, None, "{}", NOW)

    def exception(n: int, category: str, order_id: str | None, amount: int) -> ExceptionRecord:
        expected = 2500 if order_id else None
        return ExceptionRecord(
            id=f"rex_{n}",
            run_id="rec_1",
            dedupe_key=f"key-{n}",
            category=category,
            order_id=order_id,
            provider_ref=f"pi_{n}",
            amount=amount,
            currency="EUR",
            expected_amount=expected,
            expected_currency="EUR" if expected else None,
            file="settlement.csv",
            line=n + 1,
            recorded_at=NOW - HOUR,
        )

    async with storage() as uow:
        assert await uow.reconciliations.record_run(run)
        assert await uow.reconciliations.record_exception(
            exception(1, "amount_mismatch", "ord_A", 900)
        )
        assert await uow.reconciliations.record_exception(
            exception(2, "missing_in_orders", None, 9900)
        )
        assert await uow.reconciliations.record_exception(
            exception(3, "missing_at_provider", "ord_B", 4000)
        )
        assert await uow.reconciliations.record_run(later)
        assert await uow.reconciliations.resolve(["rex_3"], run_id="rec_2", at=NOW) == 1
        await uow.commit()


@pytest.fixture
async def records() -> AsyncIterator[Records]:
    """Two paid orders (received and paid each) and a merchant endpoint: ord_A's received
    event delivered there, its paid event dead-lettered, ord_B's two events waiting; and
    recorded reconciliation exceptions."""
    storage = InMemoryStorage()
    async with storage() as uow:
        await uow.orders.add(paid_order("A", provider_ref="pi_A", at=NOW - 30 * MINUTE))
        await uow.orders.add(paid_order("B", provider_ref="pi_B", at=NOW - 20 * MINUTE))
        await uow.commit()
    endpoint, _ = await add_endpoint(storage, HOOK)
    async with storage() as uow:
        created = await uow.outbox.enqueue(
            endpoint.sink, types=None, since=NOW - HOUR, now=datetime.now(UTC), batch=100
        )
        await uow.commit()
    assert created == 4
    delivered = await attempt_one(storage, endpoint.sink, works=True)
    dead = await attempt_one(storage, endpoint.sink, works=False)
    assert (delivered.event.order_id, dead.event.order_id) == ("ord_A", "ord_A")
    await seed_reconciliation(storage)
    async with console_over(storage) as (client, _):
        yield Records(client, storage, endpoint.sink, delivered, dead)


def rows(html: str, marker: str) -> list[str]:
    """The table rows of ``html`` that contain ``marker``."""
    return [r for r in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if marker in r]


async def test_the_notifications_page_and_an_orders_deliveries_on_memory(
    records: Records,
) -> None:
    client = records.client
    await log_in(client, "olga")

    dashboard = (await client.get("/console")).text
    queue = await client.get("/console/notifications")
    order_page = (await client.get("/console/orders/ord_A")).text

    assert 'href="/console/notifications"' in dashboard, "the page is offered on memory"
    assert 'id="outbox-backlog">2<' in dashboard, "ord_B's two events wait"
    assert queue.status_code == 200
    [letter] = rows(queue.text, "/resend")
    assert f"/console/notifications/{records.dead.id}/resend" in letter
    assert "order.paid" in letter and records.sink in letter and REFUSED in letter
    assert "/console/orders/ord_A" in letter
    deliveries = rows(order_page, 'class="delivery"')
    assert len(deliveries) == 2
    [received] = [d for d in deliveries if "order.received" in d]
    [paid] = [d for d in deliveries if "order.paid" in d]
    assert ">delivered<" in received and records.sink in received
    assert ">dead<" in paid and REFUSED in paid


async def test_an_operator_resends_a_dead_letter_on_memory(records: Records) -> None:
    client = records.client
    await log_in(client, "olga")
    queue = (await client.get("/console/notifications")).text

    resent = await client.post(
        f"/console/notifications/{records.dead.id}/resend", data={"csrf": csrf_of(queue)}
    )

    assert resent.status_code == 303
    assert resent.headers["location"] == "/console/orders/ord_A"
    again = await OutboxSupport(records.storage).delivery(records.dead.id)
    assert again is not None and again.state is DeliveryState.PENDING
    assert rows((await client.get("/console/notifications")).text, "/resend") == []
    assert 'id="outbox-backlog">3<' in (await client.get("/console")).text
    async with records.storage.reader() as uow:
        timeline = await uow.orders.timeline("ord_A")
    [note] = [e for e in timeline if e.actor == "olga"]
    assert "resent" in (note.note or "") and str(records.dead.id) in (note.note or "")
    unknown = await client.post(
        "/console/notifications/999999/resend", data={"csrf": csrf_of(queue)}
    )
    assert unknown.status_code == 404


async def test_the_reconciliation_page_lists_the_open_exceptions_on_memory(
    records: Records,
) -> None:
    client = records.client
    await log_in(client, "olga")

    dashboard = (await client.get("/console")).text
    page = await client.get("/console/reconciliation")

    assert 'href="/console/reconciliation"' in dashboard, "the page is offered on memory"
    assert page.status_code == 200
    assert len(rows(page.text, '<span class="badge">')) == 2, "rex_3 was explained later"
    [mismatch] = rows(page.text, "amount_mismatch")
    assert "pi_1" in mismatch and "memory" in mismatch and "9.00" in mismatch
    assert "settlement.csv:2" in mismatch and "order 25.00 EUR" in mismatch
    assert "/console/orders/ord_A" in mismatch
    [orphan] = rows(page.text, "missing_in_orders")
    assert "pi_2" in orphan and "99.00" in orphan and "/console/orders/" not in orphan
    assert rows(page.text, "missing_at_provider") == []


def gauge(metrics: str, line: str) -> float:
    """The value of the exposition line that starts with ``line`` (name and labels)."""
    [value] = [x[len(line) :].strip() for x in metrics.splitlines() if x.startswith(line + " ")]
    return float(value)


async def test_metrics_show_the_outbox_backlog_and_reconciliation_on_memory(
    records: Records,
) -> None:
    metrics = await records.client.get("/metrics")

    assert metrics.status_code == 200
    text = metrics.text
    assert gauge(text, f'orderguard_outbox_dead_letters{{sink="{records.sink}"}}') == 1.0
    lag = gauge(text, "orderguard_outbox_lag_seconds")
    assert 20 * 60 <= lag < 60 * 60, "ord_B's received event, placed 20 minutes before NOW"
    exceptions = "orderguard_reconciliation_exceptions"
    assert gauge(text, f'{exceptions}{{category="amount_mismatch"}}') == 1.0
    assert gauge(text, f'{exceptions}{{category="missing_at_provider"}}') == 1.0
    assert gauge(text, f'{exceptions}_open{{category="missing_in_orders"}}') == 1.0
    assert gauge(text, f'{exceptions}_open{{category="missing_at_provider"}}') == 0.0
