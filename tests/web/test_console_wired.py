"""The console on real reconciliation results and a real outbox, on SQLite and PostgreSQL:
an applied reconciliation's exceptions and flagged orders; a merchant endpoint that always
fails, dead-lettered by the relay, resent by an operator (not by a viewer); the order page's
deliveries per sink."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.domain.delivery import DeliveryState
from orderguard.outbox.configured import build_relay
from orderguard.reconcile.apply import Applied, apply
from orderguard.reconcile.engine import EngineOptions
from orderguard.reconcile.run import Request, reconcile
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.e2e.payment_harness import Sandbox, Shop
from tests.outbox_kit import add_endpoint, committed_ids, receiver, relay_until
from tests.reconcile_support import seed
from tests.web.shopfront import add_user, csrf_of, log_in, order_in, shop_and_box

Pair = tuple[Shop, Sandbox]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"
MAX_ATTEMPTS = 2
#: How the console writes "tried n times" (n followed by the multiplication sign).
TIMES = "\u00d7"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    fast = {f"outbox_{k}": float(v) for k, v in {"backoff_s": 0.02, "backoff_max_s": 0.1}.items()}
    async with shop_and_box(
        tmp_path, url, outbox_max_attempts=MAX_ATTEMPTS, outbox_timeout_s=0.5, **fast
    ) as pair:
        await add_user(pair[0], "olga", "operator")
        await add_user(pair[0], "vic", "viewer")
        yield pair


def sql_of(shop: Shop) -> SqlStorage:
    storage = shop.container.storage
    assert isinstance(storage, SqlStorage)
    return storage


def rows(html: str, marker: str) -> list[str]:
    """The table rows of ``html`` that contain ``marker``."""
    return [r for r in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if marker in r]


async def applied(storage: SqlStorage, report: Path, work: Path) -> Applied:
    """``orderguard reconcile --apply`` of ``report`` (its API)."""
    work.mkdir()
    request = Request([report], options=EngineOptions(provider="memory"), formats=FORMATS)
    engine, outcome = await reconcile(storage, request, work)
    try:
        return await apply(storage, engine, outcome)
    finally:
        engine.close()


async def test_an_applied_reconciliation_is_in_the_console(shop: Pair, tmp_path: Path) -> None:
    storage = sql_of(shop[0])
    await seed(storage, "pi_{}".format, provider="memory")
    report = tmp_path / "stripe.csv"
    shutil.copy(FIXTURES / "stripe_itemized.csv", report)
    assert (await applied(storage, report, tmp_path / "work")).recorded == 5
    client = shop[0].client
    await log_in(client, "vic")  # reading the queues needs no more than a viewer

    dashboard = await client.get("/console")
    page = (await client.get("/console/reconciliation")).text
    flagged = (await client.get("/console/flagged")).text

    assert "/console/reconciliation" in dashboard.text, "build_app plugs reconciliation in"
    [amount] = rows(page, "amount_mismatch")
    assert "pi_B" in amount and f"{report}:3" in amount and "memory" in amount
    assert "9.00" in amount and "order 10.00 EUR" in amount and "/console/orders/ord_B" in amount
    [orphan] = rows(page, "missing_in_orders")
    assert "pi_X" in orphan and f"{report}:9" in orphan and "99.00" in orphan
    [missing] = rows(page, "missing_at_provider")
    assert "pi_E" in missing and "40.00" in missing and "/console/orders/ord_E" in missing
    assert len(rows(page, '<span class="badge">')) == 5
    for letter in "BCDE":
        assert f"/console/orders/ord_{letter}" in flagged, letter
    assert "/console/orders/ord_A" not in flagged


async def test_the_console_queue_lists_only_exceptions_no_later_run_explained(
    shop: Pair, tmp_path: Path
) -> None:
    storage = sql_of(shop[0])
    await seed(storage, "pi_{}".format, provider="memory")
    report = tmp_path / "stripe.csv"
    shutil.copy(FIXTURES / "stripe_itemized.csv", report)
    await applied(storage, report, tmp_path / "work")
    # The next day's report has ord_E's charge: the order is no longer missing there.
    header = report.read_text().splitlines()[0]
    later = tmp_path / "next-day.csv"
    later.write_text(
        f"{header}\npo_2,,txn_E,2026-11-03 09:00:00,,eur,40.00,0.00,40.00,charge,,ch_E,pi_E,"
        "ch_E,ord_E\n"
    )
    assert (await applied(storage, later, tmp_path / "later")).resolved == 1
    client = shop[0].client
    await log_in(client, "vic")
    page = (await client.get("/console/reconciliation")).text
    assert rows(page, "missing_at_provider") == []
    assert len(rows(page, '<span class="badge">')) == 4


async def dead_order(shop: Pair, url: str) -> tuple[str, list[str], str]:
    """A paid order whose every event was dead-lettered at the webhook endpoint ``url``:
    its id, its dead deliveries' ids and the sink."""
    storage = sql_of(shop[0])
    endpoint, _ = await add_endpoint(storage, url)
    order_id = str((await order_in(*shop, "paid"))["id"])
    events = await committed_ids(storage, order_id)
    support = OutboxSupport(storage)
    relay = build_relay(shop[0].container.settings, storage)
    deadline = time.monotonic() + 30
    try:
        while True:
            letters = await support.dead_letters(sink=endpoint.sink)
            dead = [str(d.id) for d in letters if d.event.order_id == order_id]
            if len(dead) == len(events):
                return order_id, dead, endpoint.sink
            assert time.monotonic() < deadline, "the relay did not give up in time"
            await relay.run_once(owner="console-test")
            await asyncio.sleep(0.02)
    finally:
        await relay.aclose()


async def test_the_dashboard_counts_events_the_relay_has_not_picked_up(shop: Pair) -> None:
    storage = sql_of(shop[0])
    endpoint, _ = await add_endpoint(storage, "http://127.0.0.1:9/hook")
    order_id = str((await order_in(*shop, "paid"))["id"])
    events = await committed_ids(storage, order_id)  # the relay never ran: none claimed
    client = shop[0].client
    await log_in(client, "vic")

    dashboard = (await client.get("/console")).text

    assert len(events) >= 2, "received and paid at least"
    assert f'id="outbox-backlog">{len(events)}<' in dashboard
    [by_sink] = re.findall(r'<ul id="outbox-backlog-by-sink">(.*?)</ul>', dashboard, re.S)
    assert f'<span class="sink">{endpoint.sink}</span>: <strong>{len(events)}</strong>' in by_sink


async def test_a_dead_letter_is_resent_by_an_operator_and_noted(shop: Pair) -> None:
    storage = sql_of(shop[0])
    async with receiver(fail_first=10_000) as hook:
        order_id, letters, sink = await dead_order(shop, hook.url)
    assert hook.calls == MAX_ATTEMPTS * len(letters), "no attempt past the limit"
    client = shop[0].client
    await log_in(client, "olga")

    dashboard = (await client.get("/console")).text
    queue = (await client.get("/console/notifications")).text
    order_page = (await client.get(f"/console/orders/{order_id}")).text

    assert 'id="outbox-backlog">0<' in dashboard, "every delivery is dead: none pending"
    for letter in letters:
        [row] = rows(queue, f"/console/notifications/{letter}/resend")
        assert sink in row and f"({MAX_ATTEMPTS}{TIMES})" in row and "answered 500" in row
    deliveries = rows(order_page, 'class="delivery"')
    assert len(deliveries) == len(letters)
    assert all(sink in d and ">dead<" in d and "answered 500" in d for d in deliveries)
    assert all(f">{MAX_ATTEMPTS}{TIMES}<" in d for d in deliveries)

    resent = await client.post(
        f"/console/notifications/{letters[0]}/resend", data={"csrf": csrf_of(queue)}
    )

    assert resent.status_code == 303
    assert resent.headers["location"] == f"/console/orders/{order_id}"
    by_id = {str(d.id): d for d in await OutboxSupport(storage).deliveries_of_order(order_id)}
    assert by_id[letters[0]].state is DeliveryState.PENDING
    assert all(by_id[x].state is DeliveryState.DEAD for x in letters[1:])
    assert 'id="outbox-backlog">1<' in (await client.get("/console")).text
    timeline = (await shop[0].order(order_id))["timeline"]
    [note] = [e for e in timeline if e["actor"] == "olga"]
    assert "resent" in note["note"] and sink in note["note"] and letters[0] in note["note"]
    page_after = (await client.get(f"/console/orders/{order_id}")).text
    assert len(rows(page_after, ">pending<")) == 1
    [noted] = rows(page_after, f"resent ({letters[0]})")
    assert "<strong>olga</strong>" in noted


async def test_a_viewer_cannot_resend_a_real_dead_letter(shop: Pair) -> None:
    async with receiver(fail_first=10_000) as hook:
        order_id, letters, _ = await dead_order(shop, hook.url)
    client = shop[0].client
    await log_in(client, "vic")
    queue = (await client.get("/console/notifications")).text
    assert "/resend" not in queue, "a viewer is offered no resend button"

    answer = await client.post(
        f"/console/notifications/{letters[0]}/resend", data={"csrf": csrf_of(queue)}
    )

    assert answer.status_code == 403
    deliveries = await OutboxSupport(sql_of(shop[0])).deliveries_of_order(order_id)
    assert {d.state for d in deliveries} == {DeliveryState.DEAD}
    timeline = (await shop[0].order(order_id))["timeline"]
    assert not [e for e in timeline if e["actor"] == "vic"]


async def test_the_order_page_shows_delivered_notifications(shop: Pair) -> None:
    async with receiver() as hook:
        storage = sql_of(shop[0])
        endpoint, _ = await add_endpoint(storage, hook.url)
        order = await order_in(*shop, "paid")
        relay = build_relay(shop[0].container.settings, storage)
        try:
            expected = len(await committed_ids(storage, str(order["id"])))
            await relay_until(relay, lambda: len(hook.accepted) >= expected)
        finally:
            await relay.aclose()
    await log_in(shop[0].client, "vic")

    page = (await shop[0].client.get(f"/console/orders/{order['id']}")).text

    deliveries = rows(page, 'class="delivery"')
    assert expected > 0 and len(deliveries) == expected
    assert all(endpoint.sink in d and ">delivered<" in d and f">1{TIMES}<" in d for d in deliveries)
    assert "order.paid" in page
