"""bench/datagen.py writes rows orderguard reads as its own: every generated order comes
back through the storage, the API, the console's queries and the gauges without an error,
and the states are spread the way a shop's two years would be (checked here with SQL of
the test's own, not with the generator's counts)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from orderguard.bootstrap import build_app, wire
from orderguard.domain.events import EVENT_FOR_STATE
from orderguard.domain.ids import ulid
from orderguard.domain.schedule import RecheckSchedule
from orderguard.domain.states import TERMINAL_ORDER_STATES, OrderState
from orderguard.storage.ports import OrderQuery
from tests.conftest import LOCAL_URL, open_storage
from tests.integration.conftest import api_settings, memory_providers

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import datagen

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ORDERS = 2000


@pytest.fixture
def generated(pg_url: str) -> str:
    datagen.generate(pg_url, ORDERS, now=NOW, seed=7, log=lambda _: None)
    return pg_url


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_states_are_spread_like_two_years_of_a_shop(generated: str) -> None:
    day_ago = NOW - timedelta(days=1)
    old = dict(
        _rows(
            generated,
            f"SELECT state, COUNT(*) FROM orders WHERE created_at < "
            f"'{day_ago.isoformat()}' GROUP BY state",
        )
    )
    total = sum(int(str(n)) for n in old.values())
    assert total > 0.99 * ORDERS
    share = {state: int(str(n)) / total for state, n in old.items()}
    # finished orders only, but the rare unresolved one left to support
    assert set(share) <= {str(s) for s in TERMINAL_ORDER_STATES} | {"payment_unknown"}
    assert 0.80 < share["paid"] < 0.88
    assert 0.09 < share["cancelled"] < 0.14
    assert 0.03 < share["refunded"] < 0.06
    first, last = _rows(generated, "SELECT MIN(created_at), MAX(created_at) FROM orders")[0]
    assert isinstance(first, datetime) and isinstance(last, datetime)
    assert NOW - timedelta(days=731) < first < NOW - timedelta(days=725)
    assert NOW - timedelta(days=1) < last <= NOW
    # the rate grows: the newer year holds more orders than the older
    newer = _rows(generated, f"SELECT COUNT(*) FROM orders WHERE created_at > "
                             f"'{(NOW - timedelta(days=365)).isoformat()}'")[0][0]  # fmt: skip
    assert 0.55 * ORDERS < int(str(newer)) < 0.65 * ORDERS


def test_every_row_is_consistent_with_its_order(generated: str) -> None:
    # a paid or refunded order has exactly one succeeded (or refunded) attempt with a
    # provider reference; a refund per refunded order; the timeline ends in the state
    assert _rows(generated, """
        SELECT o.id FROM orders o WHERE o.state IN ('paid', 'refunded') AND (
            SELECT COUNT(*) FROM payment_attempts a WHERE a.order_id = o.id
              AND a.state IN ('succeeded', 'refunded') AND a.provider_ref IS NOT NULL) <> 1
        UNION ALL
        SELECT o.id FROM orders o WHERE o.state = 'refunded'
          AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)
        UNION ALL
        SELECT o.id FROM orders o WHERE o.state <> (
            SELECT t.to_state FROM timeline t WHERE t.order_id = o.id ORDER BY t.seq DESC LIMIT 1)
        UNION ALL
        SELECT d.event_id FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
        WHERE d.event_seq <> o.seq OR d.order_id <> o.order_id
    """) == []  # fmt: skip
    pending = _rows(generated, "SELECT COUNT(*) FROM outbox_deliveries WHERE state <> 'delivered'")
    delivered = _rows(generated, "SELECT COUNT(*) FROM outbox_deliveries")
    assert int(str(pending[0][0])) < 0.01 * int(str(delivered[0][0]))
    # identifiers are the product's ULIDs: their time part is the order's creation
    for order_id, created_at in _rows(generated, "SELECT id, created_at FROM orders LIMIT 200"):
        assert isinstance(created_at, datetime)
        stamp = ulid(round(created_at.timestamp() * 1_000_000) // 1000)
        assert re.fullmatch(r"ord_[0-9A-HJKMNP-TV-Z]{26}", str(order_id))
        assert str(order_id)[4:14] == stamp[:10]
    # foreign keys and unique keys were rebuilt after the load (and hold)
    names = {str(r[0]) for r in _rows(generated, "SELECT conname FROM pg_constraint")}
    assert {"orders_pkey", "timeline_order_id_fkey", "outbox_deliveries_event_id_sink_key"} <= names


async def test_the_storage_and_the_console_read_every_generated_order(generated: str) -> None:
    storage = await open_storage(generated)
    try:
        ids = [str(r[0]) for r in _rows(generated, "SELECT id FROM orders")]
        async with storage.reader() as uow:
            for order_id in ids:
                order = await uow.orders.get(order_id)
                assert order is not None
                timeline = await uow.orders.timeline(order_id)
                assert timeline[-1].to_state is order.state
                events = await uow.orders.events(order_id)
                entered = {e.to_state for e in timeline if e.to_state in EVENT_FOR_STATE}
                assert {e.type for e in events} == {EVENT_FOR_STATE[s] for s in entered}
            assert await uow.orders.search(OrderQuery(limit=50, state=OrderState.PAID))
        email, ref = _rows(generated, "SELECT o.customer_email, a.provider_ref FROM orders o "
                           "JOIN payment_attempts a ON a.order_id = o.id LIMIT 1")[0]  # fmt: skip
        by_email = await storage.console.search(str(email).upper(), limit=50)
        expected = _rows(generated, f"SELECT id FROM orders WHERE customer_email = '{email}'")
        assert sorted(by_email) == sorted(str(r[0]) for r in expected)
        assert len(await storage.console.search(str(ref), limit=50)) == 1
        schedule = RecheckSchedule()
        stats = await storage.stats.read(
            now=datetime.now(UTC), watched=schedule.watched, shortest_wait=schedule.shortest_wait
        )
        assert sum(stats.orders_by_state.values()) == ORDERS
        received = _rows(generated, "SELECT COUNT(*) FROM webhook_events")[0][0]
        assert sum(t.received for t in stats.webhooks.values()) == received
    finally:
        await storage.close()


async def test_the_api_answers_for_generated_orders(generated: str) -> None:
    storage = await open_storage(generated)
    container = wire(api_settings(), storage, memory_providers())
    app = build_app(container=container)
    sample = _rows(generated, "SELECT DISTINCT ON (state) id, state FROM orders ORDER BY state, id")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            for order_id, state in sample:
                response = await client.get(f"/v1/orders/{order_id}")
                assert response.status_code == 200, response.text
                assert response.json()["state"] == state
            listed = await client.get("/v1/orders", params={"state": "paid", "limit": 200})
            assert listed.status_code == 200
            assert len(listed.json()["data"]) == 200
    finally:
        await storage.close()
