"""A provider whose reference the shop chooses (a wallet's ``out_trade_no``) names it from
the attempt alone, so an attempt whose first answer was lost can be asked about by it."""

from __future__ import annotations

from orderguard.providers.alipay.plugin import PROFILE as ALIPAY
from orderguard.providers.profile import CARD_PROFILE
from orderguard.providers.stripe.plugin import PROFILE as STRIPE
from orderguard.providers.wechatpay.plugin import PROFILE as WECHATPAY


def test_wechat_pay_knows_an_attempt_by_its_id() -> None:
    assert WECHATPAY.known_reference("pay_01ABC", "orderguard-pay_01ABC") == "pay_01ABC"
    # too short or with a character WeChat Pay refuses in an out_trade_no: no reference
    assert WECHATPAY.known_reference("p1", "k") is None
    assert WECHATPAY.known_reference("pay 01ABC", "k") is None


def test_alipay_knows_an_attempt_by_its_key_written_as_alipay_takes_it() -> None:
    assert ALIPAY.known_reference("pay_01ABC", "orderguard-pay_01ABC") == "orderguard_pay_01ABC"
    assert ALIPAY.known_reference("pay_01ABC", "k" * 65) is None


def test_a_provider_that_names_its_payments_itself_knows_none_beforehand() -> None:
    assert STRIPE.known_reference("pay_01ABC", "orderguard-pay_01ABC") is None
    assert CARD_PROFILE.known_reference("pay_01ABC", "orderguard-pay_01ABC") is None
