"""The support console end to end in a real browser: log in, find a stuck order in the
queue, recheck it and see it paid, refund it after confirming; every action is on the
timeline with the user's name; a viewer cannot act (refused by the server too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.browser import (
    DESKTOP,
    PHONE,
    chromium,
    fits_the_width,
    shoot,
    unlabelled_fields,
)
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import PASSWORD, add_user, order_in, shop_and_box

pytestmark = pytest.mark.slow
Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url, over_http=True) as pair:
        await add_user(pair[0], "olga", "operator")
        await add_user(pair[0], "vic", "viewer")
        yield pair


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def log_in(
    browser: Browser, shop: Shop, name: str, viewport: dict[str, int] = DESKTOP
) -> Page:
    page = await browser.new_page(locale="en", viewport=viewport)  # type: ignore[arg-type]
    await page.goto(shop.base_url + "/console")
    await expect(page.locator("h1")).to_have_text("Log in")
    assert await unlabelled_fields(page) == []
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.keyboard.press("Enter")  # the form works from the keyboard
    await expect(page.locator("#who")).to_have_text(
        f"{name} ({'operator' if name == 'olga' else 'viewer'})"
    )
    return page


async def test_recheck_a_stuck_order_then_refund_it(shop: Pair, browser: Browser) -> None:
    stuck = await order_in(*shop, "payment_unknown")
    await order_in(*shop, "paid")
    page = await log_in(browser, shop[0], "olga")
    await expect(page.locator("#stuck-count")).to_have_text("0")  # not stuck for 30 minutes yet
    await shoot(page, "console-dashboard")

    await page.click("text=Stuck orders")
    await page.fill("#minutes", "0")
    await page.keyboard.press("Enter")
    row = page.locator("tr", has_text=str(stuck["id"]))
    await expect(row).to_contain_text("payment_unknown")
    await shoot(page, "console-stuck-queue")
    await row.get_by_role("link").click()
    await expect(page.locator("#order-state")).to_have_text("payment_unknown")
    await shoot(page, "console-order-stuck")

    await page.click("#recheck")
    await expect(page.locator("#order-state")).to_have_text("paid")
    timeline = page.locator("#timeline")
    await expect(timeline).to_contain_text("olga")
    await expect(timeline.locator("tr", has_text="recheck requested")).to_contain_text(
        "support · olga"
    )
    await expect(timeline.locator("tr", has_text="payment_unknown → paid")).to_contain_text(
        "support"
    )

    await page.click("#refund")
    await page.fill("#reason", "The shopper sent the goods back")  # the amount left empty: all
    await shoot(page, "console-refund-form")
    await page.click("#review-refund")
    await expect(page.locator("[role=alert]")).to_contain_text("Refund 39.98 EUR to the shopper?")
    await expect(page.locator("#refund-reason")).to_contain_text("The shopper sent the goods back")
    await shoot(page, "console-refund-confirm")
    await page.click("#confirm-refund")
    await expect(page.locator("#order-state")).to_have_text("refunded")
    await expect(timeline.locator("tr", has_text="paid → refunded")).to_contain_text(
        "support · olga"
    )
    await shoot(page, "console-order-refunded")

    detail = await shop[0].order(str(stuck["id"]))
    assert detail["state"] == "refunded"
    by_support = [e for e in detail["timeline"] if e["cause"] == "support"]
    assert {e["actor"] for e in by_support} == {"olga"}
    # the recheck, the refund asked (with its reason) and the order refunded, each by olga
    assert any("The shopper sent the goods back" in (e["note"] or "") for e in by_support)
    assert any(e["to_state"] == "refunded" and e["kind"] == "state_changed" for e in by_support)
    assert len(await shop[1].charges(str(stuck["id"]))) == 1
    refunds = (await shop[1].ledger())["refunds"]
    assert len(refunds) == 1


async def test_a_viewer_sees_the_order_but_cannot_act(shop: Pair, browser: Browser) -> None:
    paid = await order_in(*shop, "paid")
    page = await log_in(browser, shop[0], "vic", PHONE)
    await page.fill("#q", str(paid["merchant_reference"]))
    await page.keyboard.press("Enter")

    await expect(page.locator("#order-state")).to_have_text("paid")
    await expect(page.locator("#viewer-note")).to_be_visible()
    await expect(page.locator("#recheck")).to_have_count(0)
    await expect(page.locator("#refund")).to_have_count(0)
    assert await fits_the_width(page)
    await shoot(page, "console-order-viewer-phone")

    # the server refuses even a well-formed request with the viewer's own CSRF token
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    answer = await page.request.post(
        f"{shop[0].base_url}/console/orders/{paid['id']}/refund",
        form={"csrf": csrf or "", "confirm": "yes"},
    )
    assert answer.status == 403
    assert (await shop[0].order(str(paid["id"])))["state"] == "paid"
    assert not (await shop[1].ledger())["refunds"]


async def test_the_guide_and_the_chinese_console(shop: Pair, browser: Browser) -> None:
    page = await log_in(browser, shop[0], "olga")
    await page.click("text=Support guide")
    await expect(page.locator("article h1")).to_have_text("Support guide")
    await shoot(page, "console-guide")

    await page.click("text=简体中文")
    await expect(page.locator("article")).to_be_visible()
    await expect(page.get_by_role("link", name="客服指南")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await shoot(page, "console-guide-zh-CN")
    await page.goto(f"{shop[0].base_url}/console")
    await expect(page.locator("h1")).to_have_text("概览")
    await shoot(page, "console-dashboard-zh-CN")
