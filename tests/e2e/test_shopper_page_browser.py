"""The shopper's order page in a real browser (Chromium, headless): guidance for every
state in both languages, paying again after a decline, and updating by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from orderguard.catalog import translate
from orderguard.domain.events import Cause
from tests.e2e.browser import (
    DESKTOP,
    PHONE,
    chromium,
    fits_the_width,
    shoot,
    unlabelled_fields,
)
from tests.e2e.payment_harness import Sandbox, Shop
from tests.web.shopfront import ALL_STATES, order_in, shop_and_box

pytestmark = pytest.mark.slow
Pair = tuple[Shop, Sandbox]


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url, over_http=True) as pair:
        yield pair


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_every_state_shows_its_guidance_in_both_languages(
    shop: Pair, browser: Browser
) -> None:
    orders = {state: await order_in(*shop, state) for state in ALL_STATES}
    for language, viewport in (("en", DESKTOP), ("zh-CN", PHONE)):
        context = await browser.new_context(locale=language, viewport=viewport)  # type: ignore[arg-type]
        page = await context.new_page()
        for state, order in orders.items():
            await page.goto(str(order["status_url"]))  # Accept-Language from the locale

            assert await page.get_attribute("html", "lang") == language
            await expect(page.locator("#state-words")).to_have_text(
                translate(language, f"state.{state}")
            )
            why = (
                translate(language, "why.generic_decline") + " "
                if state == "payment_failed"
                else ""
            )
            await expect(page.locator("#next-step")).to_have_text(
                translate(language, f"next.{state}", why=why)
            )
            assert await unlabelled_fields(page) == []
            assert await fits_the_width(page), (state, language)
            await expect(page.locator("#pay-again")).to_have_count(
                1 if state == "payment_failed" else 0
            )
            await expect(page.locator("#authenticate")).to_have_count(
                1 if state == "action_required" else 0
            )
            await shoot(page, f"shopper-{state}-{language}")
        await context.close()


async def test_the_language_switch_is_visible_and_works_by_keyboard(
    shop: Pair, browser: Browser
) -> None:
    order = await order_in(*shop, "payment_unknown")
    page = await browser.new_page(locale="en")
    await page.goto(str(order["status_url"]))

    switch = page.get_by_role("link", name="简体中文")
    await switch.focus()
    await page.keyboard.press("Enter")

    await expect(page.locator("#next-step")).to_have_text(
        translate("zh-CN", "next.payment_unknown")
    )
    assert await page.get_attribute("html", "lang") == "zh-CN"


async def test_a_declined_shopper_pays_again_from_the_page(shop: Pair, browser: Browser) -> None:
    order = await order_in(*shop, "payment_failed")
    page = await browser.new_page(locale="en", viewport=PHONE)  # type: ignore[arg-type]
    await page.goto(str(order["status_url"]))
    await expect(page.locator("#next-step")).to_contain_text("declined the payment")

    await page.select_option("#method", "pm_card_visa")
    await page.click("#pay-again")

    await expect(page.locator("#state-words")).to_have_text(translate("en", "state.paid"))
    await shoot(page, "shopper-paid-again-phone")
    detail = await shop[0].order(str(order["id"]))
    assert detail["state"] == "paid"
    assert [a["state"] for a in detail["payment_attempts"]] == ["failed", "succeeded"]
    assert len(await shop[1].charges(str(order["id"]))) == 1


async def test_the_page_updates_by_itself_when_the_order_becomes_paid(
    shop: Pair, browser: Browser
) -> None:
    order = await order_in(*shop, "payment_unknown")
    page = await browser.new_page(locale="en")
    await page.goto(str(order["status_url"]))
    await expect(page.locator("#state-words")).to_have_text(
        translate("en", "state.payment_unknown")
    )
    await shoot(page, "shopper-refreshing-before")

    await asyncio.sleep(1)  # the page is left alone: nobody reloads it
    settled = await shop[0].container.recheck.order(str(order["id"]), cause=Cause.JANITOR)
    assert str(settled.state) == "paid"

    await expect(page.locator("#state-words")).to_have_text(
        translate("en", "state.paid"), timeout=15_000
    )
    await expect(page.locator("#next-step")).to_have_text(translate("en", "next.paid"))
    await shoot(page, "shopper-refreshing-after")


async def test_a_shopper_finishes_authentication_from_the_page_and_comes_back_paid(
    shop: Pair, browser: Browser
) -> None:
    order = await order_in(*shop, "action_required")
    page = await browser.new_page(locale="en")
    await page.goto(str(order["status_url"]))

    await page.click("#authenticate")  # to the provider's (sandbox's) challenge page
    await page.get_by_role("button", name="Approve").click()

    await expect(page.locator("#state-words")).to_have_text(translate("en", "state.paid"))
    assert page.url == str(order["status_url"])
    assert len(await shop[1].charges(str(order["id"]))) == 1
