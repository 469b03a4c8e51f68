"""A wallet payment on the shopper's page in a real browser (Chromium, headless), the
wallets' own sandboxes behind the shop: WeChat Pay Native's QR code, screenshotted and
decoded back to the very ``code_url`` the WeChat Pay sandbox answered (its ledger), which
pays this order when a phone scans it; Alipay's button, whose link opens the Alipay
sandbox's cashier for this order (its ledger). Both in English and in Simplified Chinese."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, expect

from orderguard.api.server import reserve_port, running_server
from orderguard.bootstrap import build_app, slot, wire
from orderguard.catalog import translate
from orderguard.config import Settings
from orderguard.providers import registry
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.config import load_keys, settings_for
from orderguard.providers.alipay.sandbox.server import run_sandbox as run_alipay
from orderguard.providers.wechatpay.sandbox.identity import load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox as run_wechatpay
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig as WechatConfig
from orderguard.services.providers import Providers
from tests.conftest import open_storage
from tests.e2e.browser import PHONE, chromium, shoot
from tests.factories import key, order_body

#: One shop, its sandboxes and one browser for the module's tests (each places its own order).
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
#: What the shop's order costs (tests.factories' two lines), in fen.
TOTAL_FEN = 2 * 1999
LANGUAGES = ("zh-CN", "en")


@dataclass
class Sandboxes:
    alipay: str
    wechatpay: str
    settings: dict[str, str]

    async def ledger(self, base_url: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=base_url) as admin:
            found: dict[str, Any] = (await admin.get("/ledger")).json()
            return found


@dataclass
class Shop:
    client: httpx.AsyncClient
    sandboxes: Sandboxes

    async def place(self, method: str) -> dict[str, Any]:
        body = order_body(currency="CNY", payment={"method": method})
        placed = await self.client.post("/v1/orders", json=body, headers=key())
        assert placed.status_code == 201, placed.text
        order: dict[str, Any] = placed.json()
        assert order["state"] == "action_required", order
        return order

    async def prepared(self, out_trade_no: str) -> list[int]:
        """The amounts of the Alipay cashier requests for ``out_trade_no`` (its ledger)."""
        ledger = await self.sandboxes.ledger(self.sandboxes.alipay)
        return [p["total_fen"] for p in ledger["prepared"] if p["out_trade_no"] == out_trade_no]


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    tmp_path = tmp_path_factory.mktemp("wallets")
    with ExitStack() as stack:
        alipay_config = AlipayConfig(data_dir=str(tmp_path / "alipay"))
        alipay = stack.enter_context(run_alipay(alipay_config))
        wechatpay = stack.enter_context(run_wechatpay(WechatConfig(tmp_path / "wechatpay")))
        found = {
            **settings_for(alipay_config, load_keys(alipay_config), alipay),
            **load_identity(tmp_path / "wechatpay").config(wechatpay, f"{alipay}/unused"),
        }
        settings = {k.removeprefix("ORDERGUARD_").lower(): v for k, v in found.items()}
        yield Sandboxes(alipay, wechatpay, settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(
    tmp_path_factory: pytest.TempPathFactory, sandboxes: Sandboxes
) -> AsyncIterator[Shop]:
    """orderguard over HTTP with an Alipay and a WeChat Pay account at their sandboxes."""
    database = f"sqlite:///{tmp_path_factory.mktemp('shop') / 'orderguard.db'}"
    port = reserve_port()
    settings = Settings(public_url=f"http://127.0.0.1:{port}", **sandboxes.settings)
    slots = []
    for name in ("alipay", "wechatpay"):
        plugin = registry.plugin(name)
        [account] = [a for a in plugin.accounts(settings) if a.primary]
        slots.append(slot(settings, plugin.build(account, 5.0), plugin.profile))
    storage = await open_storage(database)
    container = wire(settings, storage, Providers(slots))
    try:
        async with (
            running_server(build_app(container=container), port=port) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield Shop(client, sandboxes)
    finally:
        await container.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def decoded(png: bytes) -> list[str]:
    """The texts of the QR codes in a screenshot."""
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


async def test_the_wechat_qr_code_on_the_page_is_the_sandboxs_code_url(
    shop: Shop, browser: Browser
) -> None:
    order = await shop.place("wechatpay_native")
    ref = order["payment_attempts"][0]["provider_ref"]
    trades = (await shop.sandboxes.ledger(shop.sandboxes.wechatpay))["trades"]
    [code_url] = [t["code_url"] for t in trades if t["out_trade_no"] == ref]
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert order["next_action"] == {
        "type": "scan_qr_code",
        "code_url": code_url,
        "expires_at": order["next_action"]["expires_at"],
    }

    for language in LANGUAGES:
        context = await browser.new_context(locale=language, viewport=PHONE)  # type: ignore[arg-type]
        page = await context.new_page()
        await page.goto(str(order["status_url"]))

        code = page.locator("#qr-code svg")
        assert decoded(await code.screenshot()) == [code_url]
        await expect(page.locator("#next-step")).to_have_text(
            translate(language, "scan.wechatpay_native")
        )
        await expect(page.locator("#state-words")).to_have_text(
            translate(language, "state.action_required.scan")
        )
        await expect(page.locator("#pay-by")).to_be_visible()
        await expect(page.locator("#authenticate")).to_have_count(0)
        await shoot(page, f"shopper-wechatpay-native-{language}")
        await context.close()
    instructions = translate("zh-CN", "scan.wechatpay_native")
    assert instructions.startswith("请使用微信扫一扫")
    assert translate("en", "scan.wechatpay_native").startswith("Open WeChat and scan")

    async with httpx.AsyncClient(base_url=shop.sandboxes.wechatpay) as phone:
        scanned = await phone.post("/sandbox/scan", json={"code_url": code_url})
    assert scanned.json()["out_trade_no"] == ref  # the code the page shows pays this order


async def test_the_alipay_button_opens_the_sandboxs_cashier_for_the_order(
    shop: Shop, browser: Browser
) -> None:
    order = await shop.place("alipay_page")
    ref = order["payment_attempts"][0]["provider_ref"]
    cashier = order["next_action"]["redirect_url"]
    assert order["next_action"]["type"] == "redirect"
    assert cashier.startswith(f"{shop.sandboxes.alipay}/gateway.do?")
    assert await shop.prepared(ref) == []  # nothing reaches Alipay before the shopper does

    for language, label in (("zh-CN", "打开支付宝付款"), ("en", "Open Alipay to pay")):
        page = await browser.new_page(locale=language, viewport=PHONE)  # type: ignore[arg-type]
        await page.goto(str(order["status_url"]))
        button = page.locator("#authenticate")
        await expect(button).to_have_text(label)
        assert await button.get_attribute("href") == cashier
        await expect(page.locator("#qr-code")).to_have_count(0)
        await shoot(page, f"shopper-alipay-{language}")

        await button.click()
        await page.wait_for_url(f"{shop.sandboxes.alipay}/**")
        await page.close()

    assert await shop.prepared(ref) == [TOTAL_FEN]  # the cashier opened for this order
