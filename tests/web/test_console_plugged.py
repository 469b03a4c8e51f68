"""The outbox's dead letters and reconciliation exceptions: absent until plugged in, then
a queue page each and a resend action that lands on the order's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from orderguard.web.console.ports import DeadLetter, Plugged, ReconciliationException, plug
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import add_user, csrf_of, log_in, order_in, shop_and_box

Pair = tuple[Shop, Sandbox]


class ListedNotifications:
    """The :class:`~orderguard.web.console.ports.Notifications` contract over a list."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters
        self.resent: list[str] = []

    async def backlog(self) -> dict[str, int]:
        return {"email": 3, "stream": 4}

    async def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        return self.letters[:limit]

    async def resend(self, dead_letter_id: str) -> DeadLetter:
        letter = next((x for x in self.letters if x.id == dead_letter_id), None)
        if letter is None:
            raise LookupError(dead_letter_id)
        self.resent.append(dead_letter_id)
        return letter


class ListedReconciliation:
    def __init__(self, found: list[ReconciliationException]) -> None:
        self.found = found

    async def exceptions(self, *, limit: int) -> list[ReconciliationException]:
        return self.found[:limit]


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url) as pair:
        await add_user(pair[0], "olga", "operator")
        await add_user(pair[0], "vic", "viewer")
        yield pair


def app_of(shop: Shop) -> FastAPI:
    transport = shop.client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    return app


async def test_the_app_plugs_in_both_queues_and_unplugged_queues_are_not_offered(
    shop: Pair,
) -> None:
    await log_in(shop[0].client, "olga")
    dashboard = await shop[0].client.get("/console")

    assert "/console/notifications" in dashboard.text, "build_app plugs in the outbox"
    assert 'id="outbox-backlog">0<' in dashboard.text
    assert (await shop[0].client.get("/console/notifications")).status_code == 200
    assert "/console/reconciliation" in dashboard.text, "and reconciliation"
    assert (await shop[0].client.get("/console/reconciliation")).status_code == 200

    app_of(shop[0]).state.console_plugged = Plugged()  # as an app that plugs nothing in
    bare = await shop[0].client.get("/console")
    assert "/console/reconciliation" not in bare.text
    assert "/console/notifications" not in bare.text
    assert (await shop[0].client.get("/console/reconciliation")).status_code == 404
    assert (await shop[0].client.get("/console/notifications")).status_code == 404


async def test_plugged_queues_show_and_a_resend_is_on_the_timeline(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    letter = DeadLetter("dl_1", str(order["id"]), "order.paid", "email", 8, "550 mailbox full", at)
    notifications = ListedNotifications([letter])
    mismatch = ReconciliationException(
        "rx_1", "sandbox", "amount_mismatch", "pi_9", 3999, "EUR", "3999 settled, 3998 ordered", at
    )
    plug(
        app_of(shop[0]),
        notifications=lambda _wiring: notifications,
        reconciliation=lambda _wiring: ListedReconciliation([mismatch]),
    )
    client = shop[0].client
    await log_in(client, "olga")

    dashboard = await client.get("/console")
    queue = await client.get("/console/notifications")
    exceptions = await client.get("/console/reconciliation")
    resent = await client.post(
        "/console/notifications/dl_1/resend", data={"csrf": csrf_of(queue.text)}
    )
    unknown = await client.post(
        "/console/notifications/dl_x/resend", data={"csrf": csrf_of(queue.text)}
    )

    assert 'id="outbox-backlog">7<' in dashboard.text, "3 waiting for email, 4 for the stream"
    assert "550 mailbox full" in queue.text and "amount_mismatch" in exceptions.text
    assert resent.status_code == 303 and unknown.status_code == 404
    assert notifications.resent == ["dl_1"]
    timeline = (await shop[0].order(str(order["id"])))["timeline"]
    [note] = [e for e in timeline if e["actor"] == "olga"]
    assert note["note"] == "notification order.paid to email resent (dl_1)"
    assert note["cause"] == "support"


async def test_a_viewer_cannot_resend(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    notifications = ListedNotifications(
        [DeadLetter("dl_1", str(order["id"]), "order.paid", "email", 8, "refused", at)]
    )
    plug(app_of(shop[0]), notifications=lambda _wiring: notifications)
    await log_in(shop[0].client, "vic")
    queue = await shop[0].client.get("/console/notifications")

    answer = await shop[0].client.post(
        "/console/notifications/dl_1/resend", data={"csrf": csrf_of(queue.text)}
    )

    assert answer.status_code == 403 and notifications.resent == []
