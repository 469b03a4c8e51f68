"""RSA2 signing of requests, notifications and gateway answers: round trips, tampering
refused, the raw answer text taken as sent, and python-alipay-sdk as an independent check."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from alipay import AliPay

from orderguard.providers.alipay import keys, signing
from tests.providers import alipay_support
from tests.providers.alipay_support import KeyPairs

# the shared fixtures, by name
key_pairs = alipay_support.key_pairs


QUERY = "alipay.trade.query"


def test_the_signed_string_is_sorted_pairs_without_sign_or_empty_values() -> None:
    params = {"method": "m", "app_id": "1", "sign": "x", "empty": "", "biz_content": '{"a":1}'}
    assert signing.content(params) == 'app_id=1&biz_content={"a":1}&method=m'


def test_a_notification_signs_neither_sign_nor_sign_type() -> None:
    params = {"sign_type": "RSA2", "sign": "s", "notify_id": "n", "app_id": "a"}
    assert signing.notification_content(params) == "app_id=a&notify_id=n"


def test_a_signature_verifies_and_any_change_is_refused(key_pairs: KeyPairs) -> None:
    text = "app_id=1&method=alipay.trade.query&total_amount=25.99"
    signature = signing.sign(text, key_pairs.app)
    public = key_pairs.app.public_key()
    assert signing.verify(text, signature, public)
    assert not signing.verify(text.replace("25.99", "25.98"), signature, public)
    assert not signing.verify(text, signature, key_pairs.alipay.public_key())
    assert not signing.verify(text, "not base64!", public)


def test_the_raw_response_text_is_what_is_verified_not_a_reserialisation(
    key_pairs: KeyPairs,
) -> None:
    raw = '{"code": "10000",  "msg":"Success", "subject":"\\u5546\\u54c1 {x}", "n":{"a":[1]}}'
    text = signing.response_text("alipay_trade_query_response", raw, key_pairs.alipay)
    answer = signing.signed_response(text, QUERY)
    assert answer.raw == raw
    assert answer.body["subject"] == "商品 {x}"
    assert answer.sign is not None
    assert signing.verify(answer.raw, answer.sign, key_pairs.alipay.public_key())
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":"))
    assert not signing.verify(reserialised, answer.sign, key_pairs.alipay.public_key())


def test_the_sign_may_come_before_the_response_and_error_response_is_found() -> None:
    text = '{ "sign" : "abc", "error_response" : {"code":"40002"} }'
    answer = signing.signed_response(text, QUERY)
    assert (answer.key, answer.raw, answer.sign) == ("error_response", '{"code":"40002"}', "abc")


@pytest.mark.parametrize("text", ["[]", '{"other_response": {}}', '{"a":1} x', "not json"])
def test_an_answer_without_the_response_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        signing.signed_response(text, QUERY)


def test_keys_are_read_as_pem_as_one_line_base64_and_from_a_file(
    key_pairs: KeyPairs, tmp_path: object
) -> None:
    pem = keys.private_pem(key_pairs.app)
    one_line = keys.bare_base64(pem)
    path = tmp_path / "app.pem"  # type: ignore[operator]
    path.write_text(pem)
    text = "probe"
    for value in (pem, one_line, str(path)):
        signature = signing.sign(text, keys.private_key(value))
        assert signing.verify(text, signature, key_pairs.app.public_key())
    public = keys.public_pem(key_pairs.app.public_key())
    assert keys.public_key(keys.bare_base64(public)).public_numbers() == (
        key_pairs.app.public_key().public_numbers()
    )


def test_an_unreadable_key_setting_does_not_repeat_the_value() -> None:
    secret_looking = "MIIsecret-but-not-a-key"
    with pytest.raises(keys.UnreadableKey) as caught:
        keys.private_key(secret_looking)
    assert secret_looking not in str(caught.value)


# python-alipay-sdk (3.4.0) as an independent implementation of the same rules


def _sdk(private: str, public: str) -> AliPay:
    return AliPay(
        appid="9021000100000001",
        app_private_key_string=private,
        alipay_public_key_string=public,
        sign_type="RSA2",
    )


def test_the_sdk_verifies_a_request_we_signed(key_pairs: KeyPairs) -> None:
    params = signing.signed_params(
        {
            "app_id": "1",
            "method": QUERY,
            "sign_type": "RSA2",
            "biz_content": '{"out_trade_no":"a"}',
        },
        key_pairs.app,
    )
    # the SDK holding the app's public key where it expects Alipay's: it checks our signature
    sdk = _sdk(keys.private_pem(key_pairs.alipay), keys.public_pem(key_pairs.app.public_key()))
    unsigned = {k: v for k, v in params.items() if k != "sign"}
    message = "&".join(f"{k}={v}" for k, v in sdk._ordered_data(unsigned))
    assert sdk._verify(message, params["sign"])


def test_we_verify_a_cashier_url_the_sdk_signed(key_pairs: KeyPairs) -> None:
    sdk = _sdk(keys.private_pem(key_pairs.app), keys.public_pem(key_pairs.alipay.public_key()))
    query = sdk.api_alipay_trade_page_pay(
        subject="测试", out_trade_no="o_1", total_amount="25.99", return_url="https://s.test/r"
    )
    params = dict(parse_qsl(urlsplit("?" + query).query))
    assert signing.verify(signing.content(params), params["sign"], key_pairs.app.public_key())
    params["biz_content"] = params["biz_content"].replace("25.99", "0.01")
    assert not signing.verify(signing.content(params), params["sign"], key_pairs.app.public_key())


def test_the_sdk_verifies_a_notification_we_signed_and_we_verify_one_it_signed(
    key_pairs: KeyPairs,
) -> None:
    fields = {
        "notify_id": "n1",
        "app_id": "1",
        "trade_status": "TRADE_SUCCESS",
        "sign_type": "RSA2",
    }
    ours = signing.sign(signing.notification_content(fields), key_pairs.alipay)
    sdk = _sdk(keys.private_pem(key_pairs.app), keys.public_pem(key_pairs.alipay.public_key()))
    assert sdk.verify(dict(fields), ours)
    # the SDK signing as Alipay would (its private key is Alipay's here)
    as_alipay = _sdk(
        keys.private_pem(key_pairs.alipay), keys.public_pem(key_pairs.app.public_key())
    )
    signed = dict(
        parse_qsl(as_alipay.sign_data({k: v for k, v in fields.items() if k != "sign_type"}))
    )
    signed["sign_type"] = "RSA2"
    public = key_pairs.alipay.public_key()
    assert signing.verify(signing.notification_content(signed), signed["sign"], public)


def test_the_sdk_verifies_a_gateway_answer_we_signed(key_pairs: KeyPairs) -> None:
    raw = json.dumps({"code": "10000", "msg": "Success", "trade_status": "TRADE_SUCCESS"})
    text = signing.response_text("alipay_trade_query_response", raw, key_pairs.alipay)
    sdk = _sdk(keys.private_pem(key_pairs.app), keys.public_pem(key_pairs.alipay.public_key()))
    body = sdk._verify_and_return_sync_response(text, "alipay_trade_query_response")
    assert body["trade_status"] == "TRADE_SUCCESS"
