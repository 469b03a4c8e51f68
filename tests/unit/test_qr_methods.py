"""A profile says which of its methods end in a code to scan rather than a page to open."""

from __future__ import annotations

from orderguard.providers.alipay.plugin import PROFILE as ALIPAY
from orderguard.providers.profile import CARD_PROFILE
from orderguard.providers.stripe.plugin import PROFILE as STRIPE
from orderguard.providers.wechatpay.plugin import PROFILE as WECHATPAY


def test_wechat_native_is_a_code_to_scan_and_h5_a_page_to_open() -> None:
    assert WECHATPAY.qr_methods == ("wechatpay_native",)
    assert "wechatpay_h5" not in WECHATPAY.qr_methods
    assert all(WECHATPAY.takes(method) for method in WECHATPAY.qr_methods)


def test_cards_and_alipay_send_the_shopper_to_a_page() -> None:
    assert CARD_PROFILE.qr_methods == ()
    assert STRIPE.qr_methods == ()
    assert ALIPAY.qr_methods == ()
