"""WeChat Pay signatures and notification resources: round trips, what is refused, and a
cross-check with the independent ``wechatpayv3`` SDK (its own signing and decryption)."""

from __future__ import annotations

import base64
import json
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import utils as sdk

from orderguard.providers.wechatpay import resources
from orderguard.providers.wechatpay.signing import (
    SignatureRefused,
    Verifier,
    authorization,
    parse_authorization,
    request_message,
    sign,
    signature_matches,
    signed_headers,
)

NOW = 1_790_000_000
APIV3_KEY = "0123456789abcdefghijABCDEFGHIJ01"
BODY = b'{"id":"EV-1","event_type":"TRANSACTION.SUCCESS"}'


@cache
def _key(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _verifier(**keys: rsa.RSAPrivateKey) -> Verifier:
    return Verifier({s: k.public_key() for s, k in keys.items()}, 300, lambda: NOW)


def test_a_signed_answer_verifies_by_certificate_serial_and_by_public_key_id() -> None:
    verifier = Verifier(
        {
            "5157F09EFDC096DE15EBE81A47057A72": _key(1).public_key(),
            "PUB_KEY_ID_0114": _key(2).public_key(),
        },
        300,
        lambda: NOW,
    )
    verifier.verify(
        signed_headers(_key(1), "5157F09EFDC096DE15EBE81A47057A72", BODY, timestamp=NOW), BODY
    )
    verifier.verify(signed_headers(_key(2), "PUB_KEY_ID_0114", BODY, timestamp=NOW), BODY)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered body", "does not verify"),
        ("unknown serial", "no verifying key"),
        ("wrong key for the serial", "does not verify"),
        ("six minutes old", "outside"),
        ("six minutes ahead", "outside"),
        ("probe", "probe"),
        ("no signature", "no Wechatpay-Signature"),
    ],
)
def test_what_does_not_prove_itself_is_refused(case: str, reason: str) -> None:
    headers = signed_headers(_key(1), "S1", BODY, timestamp=NOW)
    body = BODY
    if case == "tampered body":
        body = BODY.replace(b"EV-1", b"EV-2")
    elif case == "unknown serial":
        headers["Wechatpay-Serial"] = "S9"
    elif case == "wrong key for the serial":
        headers = signed_headers(_key(2), "S1", BODY, timestamp=NOW)
    elif case == "six minutes old":
        headers = signed_headers(_key(1), "S1", BODY, timestamp=NOW - 360)
    elif case == "six minutes ahead":
        headers = signed_headers(_key(1), "S1", BODY, timestamp=NOW + 360)
    elif case == "probe":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    else:
        del headers["Wechatpay-Signature"]
    with pytest.raises(SignatureRefused, match=reason):
        _verifier(S1=_key(1)).verify(headers, body)


def test_four_minutes_of_skew_is_accepted_and_header_names_ignore_case() -> None:
    headers = signed_headers(_key(1), "S1", BODY, timestamp=NOW - 240)
    _verifier(S1=_key(1)).verify({k.lower(): v for k, v in headers.items()}, BODY)


def test_the_request_signature_is_the_sdk_s_byte_for_byte() -> None:
    body = '{"mchid":"1900009191","amount":{"total":1}}'
    message = "POST\n/v3/pay/transactions/native\n1790000000\nNONCE123\n" + body + "\n"
    assert (
        request_message("POST", "/v3/pay/transactions/native", "1790000000", "NONCE123", body)
        == message
    )
    # PKCS#1 v1.5 is deterministic: two independent signers give the same bytes
    assert sign(_key(1), message) == sdk.rsa_sign(_key(1), message)


def test_an_sdk_authorization_header_verifies_here() -> None:
    header = sdk.build_authorization(
        "/v3/pay/transactions/out-trade-no/att_1?mchid=1900009191",
        "GET",
        "1900009191",
        "SERIAL1",
        _key(1),
    )
    fields = parse_authorization(header)
    message = request_message(
        "GET",
        "/v3/pay/transactions/out-trade-no/att_1?mchid=1900009191",
        fields["timestamp"],
        fields["nonce_str"],
        "",
    )
    assert (fields["mchid"], fields["serial_no"]) == ("1900009191", "SERIAL1")
    assert signature_matches(_key(1).public_key(), message.encode(), fields["signature"])


def test_our_authorization_carries_every_field_the_scheme_names() -> None:
    header = authorization(
        mchid="1900009191",
        serial_no="SERIAL1",
        private_key=_key(1),
        method="POST",
        url="/v3/refund/domestic/refunds",
        body="{}",
        timestamp=NOW,
        nonce="N1",
    )
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    fields = parse_authorization(header)
    assert (fields["timestamp"], fields["nonce_str"]) == (str(NOW), "N1")
    message = f"POST\n/v3/refund/domestic/refunds\n{NOW}\nN1\n{{}}\n"
    assert sdk.rsa_sign(_key(1), message) == fields["signature"]


def test_the_sdk_verifies_an_answer_signed_here() -> None:
    headers = signed_headers(_key(2), "PUB_KEY_ID_0114", BODY, timestamp=NOW, nonce="abc")
    signature = headers["Wechatpay-Signature"]
    assert sdk.rsa_verify(str(NOW), "abc", BODY.decode(), signature, _key(2).public_key())
    assert not sdk.rsa_verify(str(NOW), "abd", BODY.decode(), signature, _key(2).public_key())


def test_the_sdk_decrypts_a_resource_encrypted_here() -> None:
    plain = {"out_trade_no": "att_1", "trade_state": "SUCCESS", "amount": {"total": 1}}
    resource = resources.encrypt(
        APIV3_KEY, plain, original_type="transaction", associated_data="transaction"
    )
    opened = sdk.aes_decrypt(
        resource["nonce"], resource["ciphertext"], resource["associated_data"], APIV3_KEY
    )
    assert json.loads(opened) == plain


def test_a_resource_sealed_by_hand_opens_and_a_tampered_one_does_not() -> None:
    sealed = AESGCM(APIV3_KEY.encode()).encrypt(
        b"fixednonce12", b'{"refund_status":"SUCCESS"}', b"refund"
    )
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "nonce": "fixednonce12",
        "associated_data": "refund",
    }
    assert resources.decrypt(APIV3_KEY, resource) == {"refund_status": "SUCCESS"}
    for change in (
        {"associated_data": "transaction"},
        {"nonce": "fixednonce13"},
        {"algorithm": "AES"},
    ):
        with pytest.raises(resources.ResourceRefused):
            resources.decrypt(APIV3_KEY, {**resource, **change})
    with pytest.raises(resources.ResourceRefused):
        resources.decrypt("X" * 32, resource)


def test_an_apiv3_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        resources.check_key("short")
