"""Test mode is always visible: a shopper's page of a test order and every console page of
a deployment without a live provider account say "no money moves" (issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orderguard.catalog import translate
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import add_user, log_in, order_in, shop_and_box, status_path

Pair = tuple[Shop, Sandbox]
BANNER = 'id="test-mode"'
CONSOLE_PAGES = ("/console", "/console/stuck", "/console/flagged", "/console/webhooks",
                 "/console/guide", "/console/search?q=x")  # fmt: skip


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url) as pair:
        yield pair


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_the_shopper_page_of_a_test_order_says_no_money_moves(
    shop: Pair, language: str
) -> None:
    order = await order_in(*shop, "paid")
    assert order["livemode"] is False
    page = await shop[0].client.get(f"{status_path(order)}&lang={language}")
    assert page.status_code == 200
    assert BANNER in page.text
    assert translate(language, "mode.test") in page.text


async def test_the_banner_is_in_both_languages() -> None:
    assert translate("en", "mode.test") == "TEST MODE — no money moves"
    assert translate("zh-CN", "mode.test") != translate("en", "mode.test")


async def test_the_shopper_page_of_an_order_taken_live_has_no_banner(shop: Pair) -> None:
    shop[0].container.payments.providers.primary.livemode = True  # as with a sk_live_ key
    order = await order_in(*shop, "paid")
    assert order["livemode"] is True
    page = await shop[0].client.get(status_path(order))
    assert page.status_code == 200
    assert BANNER not in page.text


async def test_every_console_page_of_a_test_deployment_says_so(shop: Pair) -> None:
    client = shop[0].client
    login = await client.get("/console/login")
    assert BANNER in login.text and "TEST MODE — no money moves" in login.text
    await add_user(shop[0], "olga", "operator")
    await log_in(client, "olga")
    order = await order_in(*shop, "paid")
    for path in (*CONSOLE_PAGES, f"/console/orders/{order['id']}"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert BANNER in page.text, path


async def test_the_console_of_a_live_deployment_has_no_banner(shop: Pair) -> None:
    shop[0].container.payments.providers.primary.livemode = True
    client = shop[0].client
    assert BANNER not in (await client.get("/console/login")).text
    await add_user(shop[0], "olga", "operator")
    await log_in(client, "olga")
    assert BANNER not in (await client.get("/console")).text
