"""The shopper's page of a wallet payment, over HTTP on in-memory storage: WeChat Pay
Native's code drawn on the server (its text never on the page as text or link), Alipay's
button to its cashier, plain words in both languages, and nothing a stored URL could
inject."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from markupsafe import escape

from orderguard import web
from orderguard.api.app import create_app
from orderguard.api.schemas import OrderDetailOut, ScanQrCode
from orderguard.bootstrap import wire
from orderguard.catalog import translate
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.alipay.plugin import PROFILE as ALIPAY
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker
from orderguard.providers.wechatpay.plugin import PROFILE as WECHATPAY
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.testing import InMemoryStorage
from orderguard.web.templating import moment
from tests.conftest import LOCAL_URL
from tests.factories import key, new_order
from tests.integration.conftest import api_settings

AT = datetime.now(UTC).replace(microsecond=0)
CODE = "weixin://wxpay/bizpayurl?pr=Zx9-Qr_w"
CASHIER = "https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&sign=a%2Bb"
SVG = re.compile(r'<div class="qr" id="qr-code" role="img" aria-label="[^"]+"><svg [^>]*>')


class Page:
    """The shop's pages on in-memory storage, with a WeChat Pay and an Alipay account."""

    def __init__(self, client: httpx.AsyncClient, storage: InMemoryStorage) -> None:
        self.client, self.storage = client, storage

    async def of(self, order: Order, lang: str) -> str:
        async with self.storage() as uow:
            await uow.orders.add(order)
            await uow.commit()
        query = {"token": order.status_token, "lang": lang}
        shown = await self.client.get(f"/orders/{order.id}", params=query)
        assert shown.status_code == 200, shown.text
        return shown.text


@pytest.fixture
async def pages() -> AsyncIterator[Page]:
    slots = []
    for name, profile in (("wechatpay", WECHATPAY), ("alipay", ALIPAY)):
        slot = ProviderSlot(InMemoryProvider(name=name), CircuitBreaker(failure_threshold=3))
        slot.profile = profile
        slots.append(slot)
    storage = InMemoryStorage()
    container = wire(api_settings(), storage, Providers(slots))
    app = create_app(container=container, faces=[web.install])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        yield Page(client, storage)


def waiting(method: str, url: str, *, livemode: bool = False) -> Order:
    order = new_order()
    order.livemode = livemode
    attempt = PaymentAttempt("pay_1", order.id, 1, "x", method, 3998, "CNY", "k", AT, AT)
    attempt.redirect_url = url
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    attempt.move_to(AttemptState.ACTION_REQUIRED, at=AT)
    order.move_to(OrderState.ACTION_REQUIRED, cause=Cause.API, at=AT)
    return order


def words(html: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>\s*(.*?)\s*</', html, re.S)
    assert found, f"no #{element}"
    return found[1]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
async def test_a_wechat_native_order_shows_its_code_drawn_and_how_to_scan_it(
    pages: Page, lang: str
) -> None:
    html = await pages.of(waiting("wechatpay_native", CODE), lang)

    assert SVG.search(html), "the code is drawn inline"
    assert "<img" not in html and "data:" not in html  # nothing for the CSP to allow
    assert "Zx9-Qr_w" not in html  # its text is the drawing only: never a link, never text
    assert words(html, "state-words") == translate(lang, "state.action_required.scan")
    assert words(html, "next-step") == str(escape(translate(lang, "scan.wechatpay_native")))
    pay_by = translate(lang, "page.pay_by", at=moment(AT + timedelta(minutes=30)))
    assert words(html, "pay-by") == str(escape(pay_by))
    assert 'id="authenticate"' not in html


async def test_the_instructions_say_wechat_scan_in_chinese_and_english(pages: Page) -> None:
    assert "请使用微信扫一扫" in await pages.of(waiting("wechatpay_native", CODE), "zh-CN")
    assert "Open WeChat and scan" in await pages.of(waiting("wechatpay_native", CODE), "en")


@pytest.mark.parametrize(
    "stored",
    [
        'weixin://wxpay/bizpayurl?pr="><script>alert(1)</script>',
        "https://evil.example/qr",
        "javascript:alert(1)",
    ],
)
async def test_a_stored_code_that_is_not_wechats_is_never_drawn_or_linked(
    pages: Page, stored: str
) -> None:
    html = await pages.of(waiting("wechatpay_native", stored), "en")

    assert 'id="qr-code"' not in html and 'id="authenticate"' not in html
    assert "<script>alert" not in html and "evil.example" not in html
    assert "javascript:" not in html
    said = translate("en", "next.action_required.unavailable")
    assert words(html, "next-step") == str(escape(said))  # no button promised


@pytest.mark.parametrize(
    ("lang", "label"), [("en", "Open Alipay to pay"), ("zh-CN", "打开支付宝付款")]
)
async def test_an_alipay_order_shows_a_button_to_its_cashier(
    pages: Page, lang: str, label: str
) -> None:
    html = await pages.of(waiting("alipay_page", CASHIER), lang)

    button = re.search(r'<a class="button" id="authenticate" href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert button is not None
    assert (button[1], button[2]) == (str(escape(CASHIER)), label)
    assert words(html, "state-words") == translate(lang, "state.action_required.wallet").format(
        wallet=translate(lang, "wallet.alipay_page")
    )
    assert 'id="qr-code"' not in html
    assert translate(lang, "state.action_required") not in html  # no bank in a wallet's words


async def test_a_live_order_never_links_a_plain_http_page(pages: Page) -> None:
    url = "http://openapi.alipay.com/gateway.do?x=1"
    assert 'id="authenticate"' not in await pages.of(
        waiting("alipay_page", url, livemode=True), "en"
    )
    assert 'id="authenticate"' in await pages.of(waiting("alipay_page", url), "en")  # a sandbox


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize("state", ["payment_pending", "payment_unknown"])
@pytest.mark.parametrize("method", ["wechatpay_native", "alipay_page"])
async def test_a_wallet_payment_being_confirmed_says_not_to_pay_again(
    pages: Page, lang: str, state: str, method: str
) -> None:
    order = new_order()
    attempt = PaymentAttempt("pay_1", order.id, 1, "x", method, 3998, "CNY", "k", AT, AT)
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    if state == "payment_unknown":  # the answer to the payment's creation was lost
        attempt.move_to(AttemptState.UNKNOWN, at=AT)
        order.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=AT)

    html = await pages.of(order, lang)

    wallet = translate(lang, f"wallet.{method}")
    said = translate(lang, f"next.{state}.wallet", wallet=wallet)
    assert words(html, "next-step") == str(escape(said))
    assert translate(lang, "page.pay_again") not in html
    assert 'id="qr-code"' not in html and 'id="authenticate"' not in html


async def test_the_api_answers_the_same_code_and_documents_its_shape(pages: Page) -> None:
    order = waiting("wechatpay_native", CODE)
    await pages.of(order, "en")

    read = (await pages.client.get(f"/v1/orders/{order.id}", headers=key())).json()
    schema = (await pages.client.get("/openapi.json")).json()["components"]["schemas"]

    expected = {
        "type": "scan_qr_code",
        "code_url": CODE,
        "expires_at": (AT + timedelta(minutes=30)).isoformat(),
    }
    assert read["next_action"] == expected
    assert isinstance(OrderDetailOut.model_validate(read).next_action, ScanQrCode)
    assert schema["ScanQrCode"]["properties"]["type"]["const"] == "scan_qr_code"
    assert set(schema["ScanQrCode"]["required"]) == {"type", "code_url", "expires_at"}
    assert schema["NextAction"]["properties"]["type"]["const"] == "redirect"
