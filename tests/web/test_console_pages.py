"""What the console's pages show: the dashboard's counts, the failed-webhook queue, an
order's raw webhook events, and cancelling from the order page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.storage.ports import WebhookRecord
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import add_user, csrf_of, log_in, order_in, shop_and_box

Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, database_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, database_url) as pair:
        await add_user(pair[0], "olga", "operator")
        await log_in(pair[0].client, "olga")
        yield pair


async def test_the_dashboard_counts_orders_by_state_stuck_and_flagged(shop: Pair) -> None:
    for state in ("paid", "paid", "payment_failed", "payment_unknown"):
        await order_in(*shop, state)
    old = await order_in(*shop, "payment_unknown")
    async with shop[0].container.storage() as uow:  # as if it had been stuck for an hour
        order = await uow.orders.get(str(old["id"]), for_update=True)
        assert order is not None
        order.flag(FlagReason.PAYMENT_UNRESOLVED, "gave up", cause=Cause.JANITOR, at=_hour_ago())
        order.updated_at = _hour_ago()
        await uow.orders.save(order)
        await uow.commit()

    page = await shop[0].client.get("/console")

    assert '<th scope="row">paid</th><td class="num">2</td>' in page.text
    assert '<th scope="row">payment_unknown</th><td class="num">2</td>' in page.text
    assert 'id="stuck-count"><a href="/console/stuck">1</a>' in page.text
    assert 'id="flagged-count"><a href="/console/flagged">1</a>' in page.text
    assert '<th scope="row">sandbox</th><td>closed</td>' in page.text
    stuck = await shop[0].client.get("/console/stuck")
    assert str(old["id"]) in stuck.text and stuck.text.count("/console/orders/ord_") == 1


async def test_failed_webhooks_are_queued_and_raw_events_shown_on_the_order(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    now = datetime.now(UTC)
    record = WebhookRecord(
        id="whk_1",
        provider="sandbox",
        event_id="evt_sandbox_1",
        type="payment_intent.succeeded",
        headers={},
        body=b'{"id": "evt_sandbox_1", "marker": "raw-body-shown"}',
        received_at=now,
        order_id=str(order["id"]),
    )
    async with shop[0].container.storage() as uow:
        assert await uow.webhooks.record(record)
        await uow.webhooks.failed("whk_1", error="boom: order locked", retry_at=now)
        await uow.commit()

    queue = await shop[0].client.get("/console/webhooks")
    detail = await shop[0].client.get(f"/console/orders/{order['id']}")

    assert "boom: order locked" in queue.text and "evt_sandbox_1" in queue.text
    assert "raw-body-shown" in detail.text
    assert "order.paid" in detail.text  # the notifications committed with the order


async def test_a_webhook_body_removed_by_retention_is_said_so_on_the_order(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    long_ago = datetime.now(UTC) - timedelta(days=100)
    record = WebhookRecord(
        id="whk_old",
        provider="sandbox",
        event_id="evt_sandbox_old",
        type="payment_intent.succeeded",
        headers={},
        body=b'{"id": "evt_sandbox_old", "marker": "body-before-retention"}',
        received_at=long_ago,
        order_id=str(order["id"]),
    )
    async with shop[0].container.storage() as uow:
        assert await uow.webhooks.record(record)
        await uow.webhooks.processed("whk_old", at=long_ago, order_id=None)
        cut = long_ago + timedelta(days=1)
        assert await uow.webhooks.prune_bodies(cut, at=datetime.now(UTC), limit=10) == 1
        await uow.commit()

    detail = await shop[0].client.get(f"/console/orders/{order['id']}")

    assert "body-before-retention" not in detail.text
    assert "Body removed by retention on" in detail.text
    assert "payment_intent.succeeded" in detail.text  # what it was stays


async def test_an_operator_cancels_a_declined_order(shop: Pair) -> None:
    order = await order_in(*shop, "payment_failed")
    page = await shop[0].client.get(f"/console/orders/{order['id']}")

    answer = await shop[0].client.post(
        f"/console/orders/{order['id']}/cancel", data={"csrf": csrf_of(page.text)}
    )
    again = await shop[0].client.post(
        f"/console/orders/{order['id']}/refund",
        data={"csrf": csrf_of(page.text), "confirm": "yes", "reason": "asked"},
    )

    assert answer.status_code == 303
    detail = await shop[0].order(str(order["id"]))
    [entry] = [e for e in detail["timeline"] if e["to_state"] == "cancelled"]
    assert (entry["cause"], entry["actor"]) == ("support", "olga")
    assert again.status_code == 409 and "only a paid order is refunded" in again.text


async def test_the_review_queue_shows_only_orders_a_person_still_has_to_look_at(
    shop: Pair,
) -> None:
    answered, waiting = await order_in(*shop, "paid"), await order_in(*shop, "paid")
    at = datetime.now(UTC)
    async with shop[0].container.storage() as uow:
        for order_id in (str(answered["id"]), str(waiting["id"])):
            order = await uow.orders.get(order_id, for_update=True)
            assert order is not None
            order.flag(FlagReason.SHOPPER_REPORT, "where is it?", cause=Cause.SHOPPER, at=at)
            order.flag(FlagReason.DUPLICATE_CHARGE, "pi_2", cause=Cause.SWEEP, at=at)
            await uow.orders.save(order)
        await uow.commit()
    client = shop[0].client
    page = await client.get(f"/console/orders/{answered['id']}")
    path = f"/console/orders/{answered['id']}/clear-flag"
    for reason in ("shopper_report", "duplicate_charge"):
        done = await client.post(
            path, data={"csrf": csrf_of(page.text), "reason": reason, "comment": "done"}
        )
        assert done.status_code == 303
    page = await client.get(f"/console/orders/{waiting['id']}")
    one = await client.post(
        f"/console/orders/{waiting['id']}/clear-flag",
        data={"csrf": csrf_of(page.text), "reason": "shopper_report", "comment": "answered"},
    )
    unknown = await client.post(
        f"/console/orders/{waiting['id']}/clear-flag",
        data={"csrf": csrf_of(page.text), "reason": "everything", "comment": "x"},
    )

    queue = await client.get("/console/flagged")
    shown = await client.get(f"/console/orders/{waiting['id']}")
    assert (one.status_code, unknown.status_code) == (303, 400)
    assert str(waiting["id"]) in queue.text and str(answered["id"]) not in queue.text
    assert 'class="flag-open" data-reason="duplicate_charge"' in shown.text
    assert 'class="flag-cleared" data-reason="shopper_report"' in shown.text
    assert 'id="clear-flag-duplicate_charge"' in shown.text
    assert 'id="clear-flag-shopper_report"' not in shown.text
    dashboard = await client.get("/console")
    assert 'id="flagged-count"><a href="/console/flagged">1</a>' in dashboard.text


def _hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def test_what_a_shopper_writes_is_shown_escaped(shop: Pair) -> None:
    from tests.web.shopfront import status_path, token_of

    order = await order_in(*shop, "paid")
    csrf = csrf_of((await shop[0].client.get(status_path(order))).text)
    await shop[0].client.post(
        f"/orders/{order['id']}/report",
        data={"token": token_of(order), "csrf": csrf, "message": "<script>alert(1)</script>"},
    )

    queue = await shop[0].client.get("/console/flagged")
    detail = await shop[0].client.get(f"/console/orders/{order['id']}")

    for page in (queue, detail):
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
