"""The example shop (``examples/shop/``) in Chromium, through its checkout script, against
the whole stack its one command starts: ``python -m examples.shop`` runs the Stripe sandbox,
``orderguard serve`` on SQLite and the shop's back end (the Python client).

Each scenario is a shopper of their own (a unique e-mail address) and ends with exactly one
order for that shopper in orderguard's database (read with plain SQL) and at most one
succeeded charge for it on the sandbox's ``/ledger``: neither the shop nor the page is
trusted to count. The stack is shared by the module (started once, ~5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from examples.shop.app import MODULE
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from tests.conftest import service_missing
from tests.e2e.browser import DESKTOP, chromium, shoot, unlabelled_fields
from tests.e2e.procs import children, still_running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
VISA, THREE_DS, DECLINED = (
    "pm_card_visa",
    "pm_card_authenticationRequired",
    "pm_card_chargeDeclined",
)
#: How long a page may take to show an outcome.
SETTLE_MS = 30_000


@dataclass
class Stack:
    """The running example: the shop's URL, orderguard's database, the sandbox's URL."""

    shop: str
    database: Path
    sandbox: str

    def orders(self, email: str) -> list[tuple[str, str]]:
        """(id, state) of every order of ``email`` in orderguard's database."""
        with sqlite3.connect(self.database) as db:
            rows = db.execute(
                "SELECT id, state FROM orders WHERE customer_email = ?", (email,)
            ).fetchall()
        return [(str(i), str(s)) for i, s in rows]

    def ledger(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.sandbox}/ledger", timeout=10)
        answer.raise_for_status()
        ledger: dict[str, Any] = answer.json()
        return ledger

    def succeeded_charges(self, order_id: str) -> list[dict[str, Any]]:
        """Succeeded charges at the sandbox whose metadata names ``order_id``."""
        return [
            c
            for c in self.ledger()["charges"]
            if c["status"] == "succeeded" and c["metadata"].get("order_id") == order_id
        ]

    def sandbox_post(self, path: str, body: dict[str, Any]) -> None:
        httpx.post(f"{self.sandbox}{path}", json=body, timeout=10).raise_for_status()

    def one_order_at_most_one_charge(self, email: str, state: str = "paid") -> str:
        """The scenario's end: one order of ``email``, in ``state``, charged at most once."""
        orders = self.orders(email)
        assert [s for _, s in orders] == [state], orders
        order_id = orders[0][0]
        charges = self.succeeded_charges(order_id)
        assert len(charges) == (1 if state == "paid" else 0), charges
        return order_id


def _read_urls(process: subprocess.Popen[str]) -> dict[str, str]:
    """The lines the one command prints once everything answers."""
    found: dict[str, str] = {}
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while "shop" not in found and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"python -m examples.shop exited with {process.wait()}")
        name, _, rest = line.partition(":")
        if name in {"orderguard", "sandbox", "shop"}:
            found[name] = rest.split()[0]
            if name == "orderguard":
                found["database"] = re.search(r"database (\S+)\)", rest).group(1)  # type: ignore[union-attr]
    return found


def _start_shop(work: Path) -> subprocess.Popen[str]:
    """``python -m examples.shop`` on free ports, in a session of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "examples.shop", "--port", "0", "--dir", str(work)]
    return subprocess.Popen(
        [*command, "--recheck-scale", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``python -m examples.shop`` on free ports; the janitor's first recheck of an unknown
    payment after ~10 s, so the page says "confirming" before the order turns paid."""
    if not MODULE.exists():
        service_missing("the checkout script", f"{MODULE} is not built (make js-test)")
    process = _start_shop(tmp_path_factory.mktemp("shop"))
    try:
        urls = _read_urls(process)
        yield Stack(urls["shop"].rstrip("/"), Path(urls["database"]), urls["sandbox"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(locale="en", viewport=DESKTOP)
    try:
        yield opened
    finally:
        await opened.close()


def shopper() -> str:
    return f"shopper-{uuid.uuid4().hex[:10]}@example.com"


async def open_shop(context: BrowserContext, stack: Stack, email: str, card: str) -> Page:
    """The checkout page, the shopper's e-mail address and test card filled in."""
    page = await context.new_page()
    await page.goto(stack.shop + "/")
    await page.wait_for_function("window.checkout !== undefined")
    await page.fill("#email", email)
    await page.check(f"input[name=card][value={card}]")
    return page


async def outcome(page: Page, status: str) -> str:
    """Wait until the page shows ``status``; the order id it shows."""
    box = page.locator("#outcome")
    await expect(box).to_have_attribute("data-status", status, timeout=SETTLE_MS)
    return await box.get_attribute("data-order") or ""


async def approve_three_d_secure(page: Page) -> None:
    """On the sandbox's 3-D Secure page: Approve; the shopper lands on orderguard's page."""
    await page.wait_for_url(re.compile(r"/3ds/"), timeout=SETTLE_MS)
    await page.click("form[action$='/approve'] button")
    await page.wait_for_url(re.compile(r"/orders/ord_"), timeout=SETTLE_MS)


class HeldAnswers:
    """A route for order posts: they reach the back end (and orderguard), their answers
    wait for ``release``; ``reached`` is set once one got there."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, route: Route) -> None:
        answer = await route.fetch()
        self.reached.set()
        await self.release.wait()
        with contextlib.suppress(Exception):  # the page that asked is gone: the answer is lost
            await route.fulfill(response=answer)


# --- the scenarios ------------------------------------------------------------------------


async def test_the_checkout_page_in_english_and_chinese_with_the_librarys_words(
    stack: Stack, context: BrowserContext
) -> None:
    page = await context.new_page()
    await page.goto(stack.shop + "/")
    await expect(page.locator("#total")).to_have_text("€48.48")  # 2 x 19.99 + 8.50
    await expect(page.locator("#pay")).to_have_text("Pay")
    assert await unlabelled_fields(page) == []
    await shoot(page, "example-shop")  # docs/screenshots/example-shop.png is a copy
    await page.select_option("#lang", "zh-CN")
    await expect(page.locator("#pay")).to_have_text("支付")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    # the payment's words are the library's, in the page's language
    email = shopper()
    await page.fill("#email", email)
    await page.check(f"input[name=card][value={DECLINED}]")
    await page.click("#pay")
    await outcome(page, "failed")
    await expect(page.locator("#outcome")).to_contain_text("付款未成功")
    await expect(page.locator("#outcome")).to_contain_text("您没有被扣款")
    await expect(page.locator("#pay-again")).to_have_text("重新支付")
    await page.check("input[name=again-card][value=pm_card_visa]")
    await page.click("#pay-again")
    order_id = await outcome(page, "paid")
    await expect(page.locator("#outcome")).to_contain_text("已付款")
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_a_double_click_makes_one_order(stack: Stack, context: BrowserContext) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, VISA)
    posts: list[str] = []
    page.on("request", lambda r: r.url.endswith("/checkout/orders") and posts.append(r.url))
    await page.click("#pay", click_count=2)
    order_id = await outcome(page, "paid")
    assert stack.one_order_at_most_one_charge(email) == order_id
    assert len(posts) == 1  # the second click got the first click's promise


async def test_a_refresh_during_the_payment_finds_the_same_order(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, VISA)
    held = HeldAnswers()
    await page.route("**/checkout/orders", held.handle)
    await page.click("#pay")
    await held.reached.wait()  # orderguard made the order; its answer has not come back
    await page.unroute("**/checkout/orders")
    await page.reload()  # the key and the order's body come back from sessionStorage
    held.release.set()
    order_id = await outcome(page, "paid")
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_the_back_button_from_three_d_secure_does_not_pay_twice(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, THREE_DS)
    await page.click("#pay")
    await page.wait_for_url(re.compile(r"/3ds/"), timeout=SETTLE_MS)
    three_d_secure = page.url
    await page.go_back()  # back at the shop, the bank's page not opened again
    await outcome(page, "confirming")
    await page.click("#pay")  # the shopper tries again: the same order, waiting for them
    await outcome(page, "confirming")
    assert page.url.startswith(stack.shop)
    await page.click("#continue")  # the shop's link to the step at the bank
    assert page.url == three_d_secure
    await approve_three_d_secure(page)
    await page.goto(stack.shop + "/")
    order_id = await outcome(page, "paid")
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_an_answer_lost_while_offline_is_asked_again_with_the_same_key(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, VISA)
    keys: list[str] = []

    async def lose_first(route: Route) -> None:
        keys.append(await route.request.header_value("idempotency-key") or "")
        await route.fetch()  # reached the server: the order is made and paid
        if len(keys) == 1:
            await context.set_offline(True)
            await route.abort("internetdisconnected")  # the answer never comes back
        else:
            await route.continue_()

    await page.route("**/checkout/orders", lose_first)
    await page.click("#pay")
    await expect(page.locator("#notice")).to_contain_text("sending your order again")
    await asyncio.sleep(1)
    assert len(keys) == 1  # nothing is sent while offline
    await context.set_offline(False)
    order_id = await outcome(page, "paid")
    assert len(keys) >= 2 and len(set(keys)) == 1
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_a_tab_closed_during_three_d_secure_is_resumed_from_a_new_tab(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, THREE_DS)
    await page.click("#pay")
    await page.wait_for_url(re.compile(r"/3ds/"), timeout=SETTLE_MS)
    await page.close()

    tab = await open_shop(context, stack, email, THREE_DS)  # the same cart, from a new tab
    await tab.click("#pay")  # the checkout's key from localStorage: the same order
    await outcome(tab, "confirming")  # waiting for the bank's step, offered as a link
    await tab.click("#continue")
    await approve_three_d_secure(tab)
    await tab.goto(stack.shop + "/")
    order_id = await outcome(tab, "paid")
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_a_declined_card_then_paying_again_makes_one_order(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, DECLINED)
    await page.click("#pay")
    declined = await outcome(page, "failed")
    await expect(page.locator("#outcome")).to_contain_text("You were not charged")
    assert stack.one_order_at_most_one_charge(email, "payment_failed") == declined
    await page.check("input[name=again-card][value=pm_card_visa]")
    await page.click("#pay-again", click_count=2)
    assert await outcome(page, "paid") == declined
    assert stack.one_order_at_most_one_charge(email) == declined


async def test_an_unknown_outcome_shows_confirming_then_paid(
    stack: Stack, context: BrowserContext
) -> None:
    email = shopper()
    page = await open_shop(context, stack, email, VISA)
    # The sandbox charges, then answers 500 (and keeps it for the key); its webhooks are
    # dropped, so only orderguard's janitor, asking the sandbox later, learns the outcome.
    stack.sandbox_post("/_sandbox/faults", {"webhook_drop": 1.0})
    stack.sandbox_post(
        "/_sandbox/answers",
        {"status": 500, "type": "api_error", "should_retry": "false", "after": True, "saved": True},
    )
    try:
        await page.click("#pay")
        order_id = await outcome(page, "confirming")
        await expect(page.locator("#outcome")).to_contain_text("Confirming your payment")
        await shoot(page, "example-shop-confirming")
        assert stack.orders(email) == [(order_id, "payment_unknown")]
        assert await outcome(page, "paid") == order_id
    finally:
        stack.sandbox_post("/_sandbox/faults", {"profile": "none"})
    assert stack.one_order_at_most_one_charge(email) == order_id


# --- what a stranger can post to the shop's back end --------------------------------------


def cart(email: str, **changes: Any) -> dict[str, Any]:
    """A cart as the page sends it: SKUs and quantities, the shopper, a test card."""
    body: dict[str, Any] = {
        "items": [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG", "quantity": 1}],
        "customer": {
            "email": email,
            "name": "Ana Silva",
            "address": {
                "line1": "Rua Augusta 1",
                "city": "Lisboa",
                "postal_code": "1100-048",
                "country": "PT",
            },
        },
        "card": VISA,
    }
    return body | changes


def post(stack: Stack, body: object, key: str | None = "checkout-key-0001") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{stack.shop}/checkout/orders", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    "changes",
    [
        {"items": [{"sku": "TEE-M", "quantity": 2, "unit_amount": 1}]},  # a price of its own
        {"items": [{"sku": "CAR", "quantity": 1}]},  # not in the catalogue
        {"items": [{"sku": "MUG", "quantity": 0}]},
        {"items": [{"sku": "MUG", "quantity": 1000}]},
        {"items": []},
        {"card": "pm_card_somebody_elses"},
        {"amount_total": 1},
    ],
    ids=["price", "sku", "zero", "too-many", "empty", "card", "total"],
)
async def test_the_shop_refuses_what_its_catalogue_does_not_allow(
    stack: Stack, changes: dict[str, Any]
) -> None:
    email = shopper()
    answer = post(stack, cart(email, **changes), key=f"stranger-{uuid.uuid4().hex}")
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert stack.orders(email) == []


@pytest.mark.parametrize("key", [None, "short", "has spaces in it", "x" * 200])
async def test_the_shop_refuses_an_order_without_a_proper_key(
    stack: Stack, key: str | None
) -> None:
    email = shopper()
    answer = post(stack, cart(email), key=key)
    assert answer.status_code == 400, answer.text
    assert stack.orders(email) == []


async def test_the_amount_charged_is_the_catalogues_and_the_key_is_orderguards(
    stack: Stack,
) -> None:
    email, key = shopper(), f"checkout-{uuid.uuid4().hex}"
    first, again = post(stack, cart(email), key), post(stack, cart(email), key)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["id"] == again.json()["id"]
    order_id = stack.one_order_at_most_one_charge(email)
    [charge] = stack.succeeded_charges(order_id)
    assert charge["amount"] == 2 * 1999 + 850
    with sqlite3.connect(stack.database) as db:
        [(stored,)] = db.execute(
            "SELECT key FROM idempotency_keys WHERE order_id = ?", (order_id,)
        ).fetchall()
    assert key in stored
    changed = post(stack, cart(email, items=[{"sku": "MUG", "quantity": 3}]), key)
    assert changed.status_code == 422, changed.text  # the key was used for another cart
    assert changed.json()["type"].endswith("idempotency-key-reused")


async def test_paying_again_is_checked_and_orderguards_refusal_passed_on(stack: Stack) -> None:
    email = shopper()
    placed = post(stack, cart(email), f"checkout-{uuid.uuid4().hex}")
    order_id = placed.json()["id"]

    def pay(order: str, body: object, key: str | None = "pay-again-0001") -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        url = f"{stack.shop}/checkout/orders/{order}/payments"
        return httpx.post(url, json=body, headers=headers, timeout=30)

    visa = {"payment": {"method": VISA}}
    assert pay(order_id, {"payment": {"method": "pm_card_stolen"}}).status_code == 422
    assert pay(order_id, {"payment": {"method": VISA, "amount": 1}}).status_code == 422
    assert pay(order_id, visa, key=None).status_code == 400
    assert pay("../v1/orders", visa).status_code in {400, 404}
    paid_already = pay(order_id, visa, key=f"pay-{uuid.uuid4().hex}")
    assert paid_already.status_code == 409, paid_already.text  # orderguard's own refusal
    assert paid_already.json()["type"].endswith("payment-not-allowed")
    assert stack.one_order_at_most_one_charge(email) == order_id


async def test_sigterm_stops_the_shop_and_the_sandbox_and_orderguard_it_started(
    tmp_path: Path,
) -> None:
    if not MODULE.exists():
        service_missing("the checkout script", f"{MODULE} is not built (make js-test)")
    shop = _start_shop(tmp_path)
    try:
        urls = _read_urls(shop)  # everything answers, the shop too: it prints once it serves
        assert httpx.get(urls["shop"], timeout=10).status_code == 200  # at once, no retry
        started = children(shop.pid)
        assert len(started) == 2, f"the shop runs {started}"  # the sandbox and serve
        shop.terminate()  # to the shop alone, as `kill <pid>` sends it
        assert shop.wait(timeout=30) == 128 + 15
        assert still_running(started, within=30) == [], "left running"
    finally:
        if shop.poll() is None:
            os.killpg(shop.pid, signal.SIGKILL)
            shop.wait()
        assert shop.stdout is not None
        shop.stdout.close()
