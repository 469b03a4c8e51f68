"""What a stranger or a viewer can get out of the console over HTTP: one answer for every
refused log-in, 400 (never 500) for any body, and no credentials unless admin."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from orderguard.services.console_users import ConsoleUsers, SessionPolicy
from orderguard.services.password_hashing import PasswordHashing
from orderguard.services.review import Review
from orderguard.storage.console import SqlConsoleStore
from orderguard.storage.ports import WebhookRecord
from orderguard.storage.unit_of_work import SqlStorage
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import PASSWORD, add_user, log_in, order_in, shop_and_box

Pair = tuple[Shop, Sandbox]
#: Headers that differ between any two answers whatever they say.
PER_REQUEST = {"date", "x-request-id"}
CLIENT_SECRET = "pi_3QabcDEF_secret_9f8e7d6c5b4a"
STATUS_TOKEN = "tok-of-the-shopper-page-0123456789"


@pytest.fixture
async def shop(tmp_path: Path, database_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, database_url) as pair:
        for name, role in [("olga", "operator"), ("vic", "viewer"), ("ada", "admin")]:
            await add_user(pair[0], name, role)
        yield pair


def browser(shop: Shop) -> httpx.AsyncClient:
    """A second client on the same app, with a cookie jar of its own."""
    return httpx.AsyncClient(transport=shop.client._transport, base_url=shop.base_url)


def answer_of(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a client learns from a response but what changes on every request."""
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k not in PER_REQUEST)
    return response.status_code, response.content, headers


async def test_unknown_name_wrong_password_and_locked_account_get_the_same_bytes(
    shop: Pair,
) -> None:
    async with browser(shop[0]) as client:
        for _ in range(5):
            await log_in(client, "olga", "wrong password")  # olga is locked now
        unknown = await log_in(client, "nobody-here", PASSWORD)
        wrong = await log_in(client, "vic", "not the password")
        locked = await log_in(client, "olga", PASSWORD)

        assert unknown.status_code == 401
        assert answer_of(unknown) == answer_of(wrong) == answer_of(locked)
        assert "og_session" not in client.cookies


async def test_a_full_hashing_pool_answers_503_with_retry_after(shop: Pair) -> None:
    storage = shop[0].container.storage
    assert isinstance(storage, SqlStorage)
    hashing = PasswordHashing(workers=1, queue=0)
    app = shop[0].client._transport.app  # type: ignore[attr-defined]
    app.state.console_users = ConsoleUsers(
        SqlConsoleStore(storage.db), SessionPolicy(), hashing=hashing
    )
    try:
        async with browser(shop[0]) as client:
            with hashing.reserve():
                busy = await log_in(client, "olga", PASSWORD)
            after = await log_in(client, "olga", PASSWORD)

        assert busy.status_code == 503 and busy.headers["retry-after"]
        assert "try again in a moment" in busy.text
        assert after.status_code == 303
    finally:
        hashing.close()


HOSTILE = [
    ("application/json", b'{"csrf": "x", "name": "olga"}'),
    ("application/json", b"[1, 2"),
    ("text/plain", b"\x00\xff\xfe garbage \x81"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=a\r\n"),
    ("application/x-www-form-urlencoded", b"a=" + b"x" * 40_000),
    ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(50))),
    ("", b"name=olga"),
]
#: Forms that parse (broken escapes are read leniently) but carry no valid CSRF token.
FORGED = [b"name=%ff%fe&password=%c3%28&csrf=%", b"csrf=&csrf=&&&==", b"\x00=\xff"]


async def test_every_console_post_answers_hostile_bodies_with_400_never_500(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    posts = [
        "/console/logout",
        f"/console/orders/{order['id']}/recheck",
        f"/console/orders/{order['id']}/refund",
        f"/console/orders/{order['id']}/cancel",
        f"/console/orders/{order['id']}/clear-flag",
        "/console/notifications/1/resend",
    ]
    async with browser(shop[0]) as stranger, browser(shop[0]) as olga:
        await stranger.get("/console/login")  # a CSRF cookie, as a browser would have
        await log_in(olga, "olga")
        answers: dict[tuple[str, int], int] = {}
        for number, (kind, body) in enumerate(HOSTILE):
            headers = {"content-type": kind} if kind else {}
            login = await stranger.post("/console/login", content=body, headers=headers)
            answers["/console/login", number] = login.status_code
            for path in posts:
                answer = await olga.post(path, content=body, headers=headers)
                answers[path, number] = answer.status_code
        forged = {
            (path, body): (await client.post(path, content=body, headers=_FORM)).status_code
            for client, path in [(stranger, "/console/login"), *((olga, p) for p in posts)]
            for body in FORGED
        }
        chunked = await olga.post("/console/logout", content=_chunks(), headers=_FORM)
        missing = await stranger.post("/console/login", data={"csrf": stranger.cookies["og_csrf"]})

        malformed = {where: status for where, status in answers.items() if status != 400}
        assert malformed == {}
        assert set(forged.values()) == {403}
        assert chunked.status_code == 400  # no Content-Length: size unknown
        assert missing.status_code == 401  # a well-formed form without name or password
        assert (await olga.get("/console")).status_code == 200  # still logged in
        assert (await shop[0].order(str(order["id"])))["state"] == "paid"


_FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _chunks() -> AsyncIterator[bytes]:
    yield b"csrf=x"
    yield b"&a=b"


async def test_only_an_admin_sees_credentials_in_raw_provider_bodies(shop: Pair) -> None:
    order = await order_in(*shop, "paid")
    await _stripe_like_webhook(shop[0], str(order["id"]))
    await Review(shop[0].container.storage).note(
        str(order["id"]), f"provider answered with client_secret={CLIENT_SECRET}", actor="ada"
    )
    seen: dict[str, tuple[str, str]] = {}
    for name in ("vic", "olga", "ada"):
        async with browser(shop[0]) as client:
            await log_in(client, name)
            detail = await client.get(f"/console/orders/{order['id']}")
            queue = await client.get("/console/webhooks")
            seen[name] = (detail.text, queue.text)

    secrets = [CLIENT_SECRET, STATUS_TOKEN, "whsec_leaked123", "Bearer sk_"]
    for name in ("vic", "olga"):
        detail, queue = seen[name]
        assert [s for s in secrets if s in detail or s in queue] == [], name
        assert "payment_intent.succeeded" in detail and "evt_doors_1" in queue  # the rest shows
        assert "token=" not in detail.replace("token=[hidden]", "")  # no shopper-page link
    detail, queue = seen["ada"]
    assert CLIENT_SECRET in detail and STATUS_TOKEN in detail and "whsec_leaked123" in queue


async def _stripe_like_webhook(shop: Shop, order_id: str) -> None:
    intent = {
        "id": "pi_3QabcDEF",
        "object": "payment_intent",
        "client_secret": CLIENT_SECRET,
        "payment_method": "pm_card_visa",
        "return_url": f"https://shop.example/orders/{order_id}?token={STATUS_TOKEN}",
        "metadata": {"og_order_id": order_id},
    }
    body = {"id": "evt_doors_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    now = datetime.now(UTC)
    record = WebhookRecord(
        id="whk_doors_1",
        provider="sandbox",
        event_id="evt_doors_1",
        type="payment_intent.succeeded",
        headers={},
        body=json.dumps(body).encode(),
        received_at=now,
        order_id=order_id,
    )
    error = f"provider said 401 to Authorization: Bearer sk_live_abc123 (secret whsec_leaked123, {CLIENT_SECRET})"  # noqa: E501
    async with shop.container.storage() as uow:
        assert await uow.webhooks.record(record)
        await uow.webhooks.failed("whk_doors_1", error=error, retry_at=now)
        await uow.commit()
