"""What the shopper must do outside the shop, as the API's ``next_action`` says it: a code
to scan for a method the provider's profile lists in ``qr_methods``, a page to open for any
other; a code whose text is not its provider's kind of code is never offered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from orderguard.api.render import next_action
from orderguard.api.schemas import ShopperStep
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.alipay.plugin import PROFILE as ALIPAY
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.profile import ProviderProfile
from orderguard.providers.resilience import CircuitBreaker
from orderguard.providers.wechatpay.plugin import PROFILE as WECHATPAY
from orderguard.services.payments import Payments, PaymentSettings
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.shopper_action import MAX_CODE_CHARS, is_code, is_openable
from tests.factories import new_order

AT = datetime(2026, 12, 3, 10, 0, 7, 250000, tzinfo=UTC)
EXPIRY = timedelta(minutes=30)
CODE = "weixin://wxpay/bizpayurl?pr=AbC-12_x"
CASHIER = "https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&sign=a%2Bb%3D"
STEP = TypeAdapter(ShopperStep)


def wallets() -> Payments:
    """Payments at a WeChat Pay and an Alipay account (their real profiles)."""
    slots = [_slot("wechatpay", WECHATPAY), _slot("alipay", ALIPAY), _slot("memory", None)]
    return Payments(Providers(slots), PaymentSettings(return_url="", action_expiry=EXPIRY))


def _slot(name: str, profile: ProviderProfile | None) -> ProviderSlot:
    slot = ProviderSlot(InMemoryProvider(name=name), CircuitBreaker(failure_threshold=3))
    if profile is not None:
        slot.profile = profile
    return slot


def waiting(method: str, url: str | None) -> Order:
    """An order whose attempt with ``method`` waits for the shopper at ``url``."""
    order = new_order()
    attempt = PaymentAttempt("pay_1", order.id, 1, "x", method, 3998, "CNY", "k", AT, AT)
    attempt.redirect_url = url
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
    attempt.move_to(AttemptState.ACTION_REQUIRED, at=AT)
    order.move_to(OrderState.ACTION_REQUIRED, cause=Cause.API, at=AT)
    return order


def test_a_wechat_native_payment_asks_to_scan_its_code_until_it_expires() -> None:
    found = next_action(wallets().shopper_action(waiting("wechatpay_native", CODE)))

    assert found == {
        "type": "scan_qr_code",
        "code_url": CODE,
        "expires_at": datetime(2026, 12, 3, 10, 30, 7, tzinfo=UTC),  # the time_expire sent
    }
    assert STEP.validate_python(found).type == "scan_qr_code"  # the documented shape


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("alipay_page", CASHIER),
        ("alipay_wap", CASHIER),
        ("wechatpay_h5", "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1"),
        ("pm_card_authenticationRequired", "https://hooks.stripe.com/3d_secure/x"),
    ],
)
def test_every_other_method_keeps_its_redirect(method: str, url: str) -> None:
    found = next_action(wallets().shopper_action(waiting(method, url)))

    assert found == {"type": "redirect", "redirect_url": url}
    assert STEP.validate_python(found).type == "redirect"


@pytest.mark.parametrize(
    "text",
    [
        "https://evil.example/pay",  # another scheme: a link to follow, not WeChat's code
        "weixin://wxpay/bizpayurl?pr=a b",  # a space
        'weixin://wxpay/bizpayurl?pr="><script>alert(1)</script>',
        "weixin://wxpay/bizpayurl?pr=a\nb",
        "weixin://other/x",  # not a payment code
        "weixin://wxpay/" + "a" * MAX_CODE_CHARS,  # longer than any code WeChat Pay gives
    ],
)
def test_a_code_that_is_not_the_providers_is_neither_scanned_nor_followed(text: str) -> None:
    assert not is_code(text, WECHATPAY.code_prefixes)
    assert wallets().shopper_action(waiting("wechatpay_native", text)) is None


def test_only_a_method_in_the_profiles_qr_methods_is_a_code() -> None:
    providers = wallets().providers
    assert providers.shows_code("wechatpay_native")
    assert providers.code_prefixes("wechatpay_native") == ("weixin://wxpay/",)
    assert not providers.shows_code("wechatpay_h5")
    assert not providers.shows_code("alipay_page")
    assert providers.code_prefixes("alipay_page") == ()
    assert not is_code(CODE, ())  # a code is never shown for a method without prefixes


def test_nothing_to_do_outside_the_shop_is_no_action() -> None:
    payments = wallets()
    assert payments.shopper_action(waiting("wechatpay_native", None)) is None
    assert payments.shopper_action(new_order()) is None  # received: no attempt
    paid = waiting("wechatpay_native", CODE)
    paid.attempts[-1].move_to(AttemptState.SUCCEEDED, at=AT)
    paid.move_to(OrderState.PAID, cause=Cause.WEBHOOK, at=AT)
    assert payments.shopper_action(paid) is None
    assert next_action(None) is None


@pytest.mark.parametrize(
    ("url", "live", "test"),
    [
        (CASHIER, True, True),
        ("http://127.0.0.1:8123/gateway.do?x=1", False, True),  # a sandbox: test orders only
        ("javascript:alert(1)", False, False),
        ("weixin://wxpay/bizpayurl?pr=x", False, False),
        ('https://shop.example/"onmouseover="alert(1)', False, False),
        ("https://shop.example/<script>", False, False),
        ("//evil.example/", False, False),
    ],
)
def test_the_page_links_only_plain_web_addresses(url: str, live: bool, test: bool) -> None:
    assert is_openable(url, livemode=True) is live
    assert is_openable(url, livemode=False) is test
