"""3-D Secure end to end over real HTTP: orderguard served by uvicorn, the sandbox's hosted
challenge page, and the shopper's browser (an HTTP client that follows nothing by itself).

The sandbox redirects the shopper to the return URL orderguard gave it
(``Settings.public_url`` + ``/orders/{id}/return?token=...``); only that request, made by
the "browser", tells orderguard the shopper is back. No webhooks are configured, so
nothing but the shopper (or the expiry janitor) can move the order.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from orderguard.domain.settle import CHARGE_AFTER_CANCEL
from orderguard.services.expiry import ABANDONED, expire_abandoned
from tests.e2e.payment_harness import (
    THREE_DS,
    Sandbox,
    Shop,
    assert_client_retry_changes_nothing,
    open_shop,
    sandbox,
    states,
    transitions,
)

pytestmark = pytest.mark.timeout(60)

FORM = re.compile(r'<form method="post" action="([^"]+)">')
#: A realistic expiry for an abandoned authentication; the janitor is run "later" by clock.
EXPIRY = timedelta(minutes=30)


def later() -> datetime:
    """The janitor's clock, just past the expiry of an order changed a moment ago."""
    return datetime.now(UTC) + EXPIRY + timedelta(minutes=1)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box: Sandbox) -> AsyncIterator[Shop]:
    async with open_shop(database_url, [box], over_http=True) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The shopper's browser: absolute URLs, redirects followed by the test, step by step."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as client:
        yield client


async def challenge(shop: Shop, box: Sandbox, browser: httpx.AsyncClient) -> dict[str, Any]:
    """Place an order that needs 3-D Secure and open its hosted page; returns the order."""
    placed = await shop.placed(THREE_DS)
    order = placed.answer
    assert order["state"] == "action_required"
    [attempt] = order["payment_attempts"]
    assert attempt["state"] == "action_required"
    [intent] = await box.intents(order["id"])
    assert intent["status"] == "requires_action"
    assert attempt["provider_ref"] == intent["id"]
    redirect = order["next_action"]["redirect_url"]
    assert order["next_action"]["type"] == "redirect"
    assert redirect == f"{box.url}/3ds/{intent['id']}"
    # The sandbox will send the shopper back to orderguard's own public URL.
    return_url = intent["return_url"]
    assert return_url == f"{shop.base_url}/orders/{order['id']}/return?token=" + _token(order)

    page = await browser.get(redirect)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert FORM.findall(page.text) == [
        f"/3ds/{intent['id']}/approve",
        f"/3ds/{intent['id']}/refuse",
    ]
    assert await box.charges(order["id"]) == []
    await assert_client_retry_changes_nothing(shop, placed, box)
    return order


def _token(order: dict[str, Any]) -> str:
    token: str = parse_qs(urlsplit(order["status_url"]).query)["token"][0]
    return token


async def submit(
    browser: httpx.AsyncClient, box: Sandbox, order: dict[str, Any], button: str
) -> httpx.Response:
    """Press a button on the hosted page as its form does, then follow the shopper home."""
    page = await browser.get(order["next_action"]["redirect_url"])
    [action] = [a for a in FORM.findall(page.text) if a.endswith(f"/{button}")]
    pressed = await browser.post(box.url + action)
    assert pressed.status_code == 303, pressed.text
    home = pressed.headers["location"]
    assert home.startswith(order["status_url"].split("/orders/")[0] + "/orders/")
    assert urlsplit(home).path == f"/orders/{order['id']}/return"
    assert parse_qs(urlsplit(home).query)["token"] == [_token(order)]
    back = await browser.get(home)  # real HTTP to the orderguard server
    assert back.status_code == 303, back.text
    assert back.headers["location"] == order["status_url"]
    return back


async def test_an_approved_challenge_pays_the_order_once(
    shop: Shop, box: Sandbox, browser: httpx.AsyncClient
) -> None:
    order = await challenge(shop, box, browser)

    await submit(browser, box, order, "approve")

    detail = await shop.order(order["id"])
    assert detail["state"] == "paid"
    assert detail["next_action"] is None
    [attempt] = detail["payment_attempts"]
    assert attempt["state"] == "succeeded"
    [charge] = await box.charges(order["id"])
    assert charge["payment_intent"] == attempt["provider_ref"]
    assert len(await box.intents(order["id"])) == 1
    assert states(detail) == [
        (None, "received"),
        ("received", "payment_pending"),
        ("payment_pending", "action_required"),
        ("action_required", "paid"),
    ]
    assert transitions(detail)[-1]["cause"] == "shopper"
    # Coming back twice (reload) changes nothing.
    again = await browser.get(
        f"{shop.base_url}/orders/{order['id']}/return", params={"token": _token(order)}
    )
    assert again.status_code == 303
    assert len(await box.charges(order["id"])) == 1
    assert len((await shop.order(order["id"]))["timeline"]) == len(detail["timeline"])


async def test_a_refused_challenge_fails_the_order_without_a_charge(
    shop: Shop, box: Sandbox, browser: httpx.AsyncClient
) -> None:
    order = await challenge(shop, box, browser)

    await submit(browser, box, order, "refuse")

    detail = await shop.order(order["id"])
    assert detail["state"] == "payment_failed"
    [attempt] = detail["payment_attempts"]
    assert attempt["state"] == "failed"
    assert attempt["decline_code"]
    assert await box.charges(order["id"]) == []
    assert transitions(detail)[-1]["from_state"] == "action_required"
    assert transitions(detail)[-1]["cause"] == "shopper"


async def test_a_wrong_token_on_the_way_back_reveals_and_changes_nothing(
    shop: Shop, box: Sandbox, browser: httpx.AsyncClient
) -> None:
    order = await challenge(shop, box, browser)
    page = await browser.get(order["next_action"]["redirect_url"])
    [approve] = [a for a in FORM.findall(page.text) if a.endswith("/approve")]
    assert (await browser.post(box.url + approve)).status_code == 303

    forged = await browser.get(
        f"{shop.base_url}/orders/{order['id']}/return", params={"token": "not-the-token"}
    )

    assert forged.status_code == 404
    assert (await shop.order(order["id"]))["state"] == "action_required"


async def test_an_abandoned_challenge_waits_for_the_shopper_then_expires(
    shop: Shop, box: Sandbox, browser: httpx.AsyncClient
) -> None:
    order = await challenge(shop, box, browser)
    storage, payments, recheck = (
        shop.container.storage,
        shop.container.payments,
        shop.container.recheck,
    )

    # Nothing moves the order while the shopper is away and the expiry has not passed.
    await asyncio.sleep(0.2)
    assert await expire_abandoned(storage, payments, recheck, after=EXPIRY) == 0
    assert (await shop.order(order["id"]))["state"] == "action_required"

    cancelled = await expire_abandoned(storage, payments, recheck, after=EXPIRY, clock=later)

    assert cancelled == 1
    detail = await shop.order(order["id"])
    assert detail["state"] == "cancelled"
    assert detail["next_action"] is None
    [attempt] = detail["payment_attempts"]
    assert (attempt["state"], attempt["decline_code"]) == ("failed", ABANDONED)
    last = transitions(detail)[-1]
    assert (last["from_state"], last["to_state"], last["cause"]) == (
        "action_required",
        "cancelled",
        "janitor",
    )
    assert (
        last["note"]
        == "authentication not finished within 30 min; the payment was cancelled at the provider"
    )
    assert await box.charges(order["id"]) == []
    assert await expire_abandoned(storage, payments, recheck, after=EXPIRY, clock=later) == 0


async def test_a_shopper_who_approves_after_the_expiry_is_never_charged_silently(
    shop: Shop, box: Sandbox, browser: httpx.AsyncClient
) -> None:
    """G3/G5: once the order is cancelled, either the challenge can no longer charge, or a
    charge that still happens is caught when the shopper comes back (the order flagged, see
    ``domain.settle.CHARGE_AFTER_CANCEL``), never money taken for a cancelled order with
    nothing on the order saying so."""
    order = await challenge(shop, box, browser)
    storage, payments, recheck = (
        shop.container.storage,
        shop.container.payments,
        shop.container.recheck,
    )
    assert await expire_abandoned(storage, payments, recheck, after=EXPIRY, clock=later) == 1

    page = await browser.get(order["next_action"]["redirect_url"])
    assert FORM.findall(page.text) == [], "a cancelled challenge offers nothing to approve"
    intent_id = order["payment_attempts"][0]["provider_ref"]
    pressed = await browser.post(f"{box.url}/3ds/{intent_id}/approve")  # a stale tab
    assert pressed.status_code == 409
    back = await browser.get(
        order["status_url"].replace("/orders/", "/orders/", 1).replace("?token=", "/return?token=")
    )
    assert back.status_code in {303, 404}

    detail = await shop.order(order["id"])
    assert detail["state"] == "cancelled"
    charged = await box.charges(order["id"])
    flag = detail["flag_reason"] or ""
    assert charged == [] or flag.startswith(CHARGE_AFTER_CANCEL), (
        f"{len(charged)} charge(s) for cancelled order {order['id']} and no flag; "
        f"timeline: {[e['note'] for e in detail['timeline']]}"
    )
