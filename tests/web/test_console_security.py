"""The console's defences, over HTTP: log-in, lock-out, CSRF, roles, cookies, sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orderguard.storage.unit_of_work import SqlStorage
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import PASSWORD, add_user, csrf_of, log_in, order_in, shop_and_box

Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, database_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, database_url) as pair:
        await add_user(pair[0], "olga", "operator")
        await add_user(pair[0], "vic", "viewer")
        yield pair


def browser(shop: Shop) -> httpx.AsyncClient:
    """A second client on the same app, with a cookie jar of its own."""
    return httpx.AsyncClient(transport=shop.client._transport, base_url=shop.base_url)


async def test_pages_need_a_log_in(shop: Pair) -> None:
    async with browser(shop[0]) as anonymous:
        for path in ("/console", "/console/stuck", "/console/orders/ord_x", "/console/guide"):
            answer = await anonymous.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")


async def test_log_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(shop: Pair) -> None:
    async with browser(shop[0]) as client:
        answer = await log_in(client, "olga")

        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "og_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie and "Path=/console" in cookie
        value = client.cookies["og_session"]
        storage = shop[0].container.storage
        assert isinstance(storage, SqlStorage)
        rows = await _sessions(storage)
        assert len(rows) == 1 and value not in str(rows)
        assert (await client.get("/console")).status_code == 200


async def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_account(
    shop: Pair,
) -> None:
    async with browser(shop[0]) as client:
        failures = [(await log_in(client, "olga", "wrong password")).status_code for _ in range(5)]
        locked = await log_in(client, "olga", PASSWORD)
        unknown = await log_in(client, "nobody", PASSWORD)

        assert failures == [401] * 5
        assert locked.status_code == 401
        assert "og_session" not in client.cookies
        assert unknown.status_code == 401
        assert "Wrong user name or password" in unknown.text


async def test_a_log_in_post_without_the_csrf_token_is_refused(shop: Pair) -> None:
    async with browser(shop[0]) as client:
        answer = await client.post("/console/login", data={"name": "olga", "password": PASSWORD})
        assert answer.status_code == 403
        assert "og_session" not in client.cookies


async def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    shop: Pair,
) -> None:
    order = await order_in(*shop, "paid")
    async with browser(shop[0]) as client:
        await log_in(client, "olga")
        path = f"/console/orders/{order['id']}/refund"
        missing = await client.post(path, data={"confirm": "yes"})
        forged = await client.post(path, data={"confirm": "yes", "csrf": "x" * 43})

        assert (missing.status_code, forged.status_code) == (403, 403)
        assert (await shop[0].order(str(order["id"])))["state"] == "paid"
        assert await shop[1].ledger() and not (await shop[1].ledger())["refunds"]


async def test_a_viewer_sees_but_every_action_is_refused_on_the_server(shop: Pair) -> None:
    paid = await order_in(*shop, "paid")
    declined = await order_in(*shop, "payment_failed")
    async with browser(shop[0]) as client:
        await log_in(client, "vic")
        page = await client.get(f"/console/orders/{paid['id']}")
        csrf = csrf_of(page.text)
        assert 'id="viewer-note"' in page.text and 'id="recheck"' not in page.text

        answers = [
            await client.post(
                f"/console/orders/{paid['id']}/refund", data={"csrf": csrf, "confirm": "yes"}
            ),
            await client.post(f"/console/orders/{paid['id']}/recheck", data={"csrf": csrf}),
            await client.post(f"/console/orders/{declined['id']}/cancel", data={"csrf": csrf}),
            await client.post(
                f"/console/orders/{paid['id']}/clear-flag", data={"csrf": csrf, "comment": "x"}
            ),
        ]

        assert [a.status_code for a in answers] == [403] * 4
        assert (await shop[0].order(str(paid["id"])))["state"] == "paid"
        assert (await shop[0].order(str(declined["id"])))["state"] == "payment_failed"
        timeline = (await shop[0].order(str(paid["id"])))["timeline"]
        assert not [e for e in timeline if e["actor"] == "vic"]


async def test_log_out_ends_the_session_on_the_server(shop: Pair) -> None:
    async with browser(shop[0]) as client:
        await log_in(client, "olga")
        stolen = client.cookies["og_session"]
        csrf = csrf_of((await client.get("/console")).text)
        assert (await client.post("/console/logout", data={"csrf": csrf})).status_code == 303

    async with browser(shop[0]) as thief:
        thief.cookies.set("og_session", stolen, path="/console")
        assert (await thief.get("/console")).status_code == 303


async def test_operator_actions_land_on_the_timeline_with_the_users_name(shop: Pair) -> None:
    paid = await order_in(*shop, "paid")
    async with browser(shop[0]) as client:
        await log_in(client, "olga")
        csrf = csrf_of((await client.get(f"/console/orders/{paid['id']}")).text)
        unconfirmed = await client.post(f"/console/orders/{paid['id']}/refund", data={"csrf": csrf})
        assert unconfirmed.headers["location"].endswith("/refund")  # asked to confirm first
        assert (await shop[0].order(str(paid["id"])))["state"] == "paid"

        done = await client.post(
            f"/console/orders/{paid['id']}/refund",
            data={"csrf": csrf, "confirm": "yes", "reason": "asked"},
        )

        assert done.status_code == 303
        detail = await shop[0].order(str(paid["id"]))
        assert detail["state"] == "refunded"
        [refund] = [e for e in detail["timeline"] if e["to_state"] == "refunded"]
        assert (refund["cause"], refund["actor"]) == ("support", "olga")


async def test_a_flag_is_cleared_only_with_a_comment(shop: Pair) -> None:
    order = await order_in(*shop, "payment_failed")
    await _report(shop[0], order, "I was charged but the page says failed")
    async with browser(shop[0]) as client:
        await log_in(client, "olga")
        page = await client.get("/console/flagged")
        assert str(order["id"]) in page.text
        csrf = csrf_of(page.text)
        path = f"/console/orders/{order['id']}/clear-flag"

        empty = await client.post(path, data={"csrf": csrf, "comment": "  "})
        cleared = await client.post(path, data={"csrf": csrf, "comment": "checked: not charged"})

        assert (empty.status_code, cleared.status_code) == (400, 303)
        detail = await shop[0].order(str(order["id"]))
        assert detail["flag_reason"] is None
        [entry] = [e for e in detail["timeline"] if e["kind"] == "flag_cleared"]
        assert (entry["actor"], entry["note"]) == (
            "olga",
            "shopper_report cleared: checked: not charged",
        )


async def test_search_finds_an_order_by_each_of_its_references(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    other = await order_in(*shop, "payment_failed")  # the same shopper's email
    detail = await shop[0].order(str(order["id"]))
    provider_ref = detail["payment_attempts"][0]["provider_ref"]
    async with browser(shop[0]) as client:
        await log_in(client, "vic")
        for text in (order["id"], order["merchant_reference"], provider_ref):
            found = await client.get("/console/search", params={"q": text})
            assert found.headers["location"] == f"/console/orders/{order['id']}", text
        by_email = await client.get("/console/search", params={"q": "ana@EXAMPLE.com"})
        assert by_email.status_code == 200 and "2 found" in by_email.text
        assert str(order["id"]) in by_email.text and str(other["id"]) in by_email.text
        nothing = await client.get("/console/search", params={"q": "nothing-like-this"})
        assert "0 found" in nothing.text


async def _report(shop: Shop, order: dict[str, object], message: str) -> None:
    from tests.web.shopfront import status_path, token_of

    csrf = csrf_of((await shop.client.get(status_path(order))).text)
    answer = await shop.client.post(
        f"/orders/{order['id']}/report",
        data={"token": token_of(order), "csrf": csrf, "message": message},
    )
    assert answer.status_code == 303


async def _sessions(storage: SqlStorage) -> list[dict[str, object]]:
    from orderguard.storage.database import transaction

    async with transaction(storage.db, write=False) as conn:
        return await conn.fetchall("SELECT * FROM console_sessions")
