"""The checkout script in a real browser (Chromium, headless) on a plain HTML page that
imports the built ``dist/checkout.js`` as a static ES module, its shop back end passing
orders on to a real orderguard: a double click, an answer lost after the order was made
and the browser offline, a refresh, and a closed tab end with exactly one order and one
charge. The real sessionStorage and localStorage keep the key, not fakes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from orderguard.providers.stripe.testcards import SUCCEEDS
from tests.conftest import service_missing
from tests.e2e.browser import chromium
from tests.e2e.payment_harness import Sandbox, Shop
from tests.factories import order_body
from tests.web.shopfront import shop_and_box

pytestmark = pytest.mark.slow
Pair = tuple[Shop, Sandbox]
MODULE = Path(__file__).resolve().parents[2] / "clients" / "js" / "dist" / "checkout.js"
SHOP = "https://shop.test"
#: The shop's checkout page: nothing but the module, a button and where the outcome goes.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Checkout</title></head>
<body>
<button id="pay" type="button">Pay</button>
<output id="outcome"></output>
<script type="module">
import { createCheckout } from "/static/checkout.js";
const checkout = createCheckout({
  endpoint: "/checkout/orders",
  // orderguard is on another origin: the shop's back end passes the status poll on
  statusEndpoint: (statusUrl, orderId) => `/checkout/status/${orderId}?${statusUrl.split("?")[1]}`,
  retry: { firstMs: 100 },
  watch: { firstMs: 100, maxMs: 1000, giveUpAfterMs: 120000 },
});
window.checkout = checkout;
window.retries = [];
checkout.on("retrying", (event) => window.retries.push(event.reason));
const show = (outcome) => {
  document.getElementById("outcome").textContent = `${outcome.status} ${outcome.orderId ?? ""}`;
};
document.getElementById("pay").addEventListener("click", async () => {
  show(await checkout.submit(window.CART));
});
checkout.resume().then((outcome) => outcome && show(outcome));
</script>
</body></html>"""


class ShopBackEnd:
    """The shop's server, as Playwright routes: the page, the module, and the two calls it
    passes on to orderguard (the order with its key, the status poll). ``lose`` answers are
    dropped after orderguard made the order, and the browser is taken offline then."""

    def __init__(self, shop: Shop, context: BrowserContext) -> None:
        self.shop = shop
        self.context = context
        self.lose = 0
        #: (Idempotency-Key, whether orderguard answered it as a replay), per order POST.
        self.posts: list[tuple[str, bool]] = []

    async def route(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if url.path == "/":
            await route.fulfill(body=PAGE, content_type="text/html")
        elif url.path == "/static/checkout.js":
            await route.fulfill(path=MODULE, content_type="text/javascript")
        elif url.path == "/checkout/orders" and request.method == "POST":
            await self.place(route)
        elif url.path.startswith("/checkout/status/"):
            order_id = url.path.rsplit("/", 1)[1]
            token = parse_qs(url.query).get("token", [""])[0]
            answer = await self.shop.client.get(
                f"/orders/{order_id}/status", params={"token": token}
            )
            await route.fulfill(status=answer.status_code, body=answer.content)
        else:
            await route.fulfill(status=404, body="")

    async def place(self, route: Route) -> None:
        key = await route.request.header_value("idempotency-key") or ""
        answer = await self.shop.client.post(
            "/v1/orders",
            content=route.request.post_data_buffer,
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
        self.posts.append((key, answer.headers.get("idempotent-replayed") == "true"))
        if self.lose > 0:
            self.lose -= 1
            await self.context.set_offline(True)
            await route.abort("connectionreset")  # made at orderguard, lost on the way back
            return
        await route.fulfill(
            status=answer.status_code, body=answer.content, content_type="application/json"
        )


@pytest.fixture
async def shop(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Pair]:
    async with shop_and_box(tmp_path, sqlite_url) as pair:
        yield pair


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not MODULE.exists():
        service_missing("the checkout script", f"{MODULE} is not built (make js-test)")
    async with chromium() as launched:
        yield launched


async def open_page(context: BrowserContext, cart: dict[str, Any]) -> Page:
    page = await context.new_page()
    await page.add_init_script(f"window.CART = {json.dumps(cart)};")
    await page.goto(SHOP + "/")
    await page.wait_for_function("window.checkout !== undefined")
    return page


async def test_double_click_lost_answer_offline_refresh_and_closed_tab_make_one_order(
    shop: Pair, browser: Browser
) -> None:
    context = await browser.new_context(locale="en")
    back_end = ShopBackEnd(shop[0], context)
    await context.route(f"{SHOP}/**", back_end.route)
    cart = order_body(payment={"method": SUCCEEDS})
    page = await open_page(context, cart)
    back_end.lose = 1

    await page.click("#pay", click_count=2)
    # the first answer was lost and the browser went offline: nothing is sent meanwhile
    await page.wait_for_function("window.retries.includes('offline')")
    assert len(back_end.posts) == 1
    await context.set_offline(False)
    await expect(page.locator("#outcome")).to_contain_text("paid ord_", timeout=60_000)
    order_id = (await page.locator("#outcome").inner_text()).split()[1]
    keys = {key for key, _ in back_end.posts}
    assert len(keys) == 1 and [replayed for _, replayed in back_end.posts] == [False, True]

    await page.reload()  # the key and the order come back from sessionStorage
    await expect(page.locator("#outcome")).to_have_text(f"paid {order_id}", timeout=60_000)
    checkout_id = await page.evaluate("window.checkout.id")
    await page.close()

    tab = await open_page(context, cart)  # a new tab: only localStorage is left
    assert await tab.evaluate("window.checkout.id") == checkout_id
    await expect(tab.locator("#outcome")).to_have_text(f"paid {order_id}", timeout=60_000)
    await tab.click("#pay")  # the same cart again: the same order, no new request
    await expect(tab.locator("#outcome")).to_have_text(f"paid {order_id}", timeout=60_000)

    assert len(back_end.posts) == 2
    assert await shop[0].order_ids() == [order_id]
    assert len(await shop[1].charges(order_id)) == 1
    await context.close()
