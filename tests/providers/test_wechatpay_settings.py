"""WeChat Pay's settings: the account they describe, what production refuses, and the
credential shapes logs redact."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.plugin import PLUGIN, PROFILE, build, reply
from orderguard.providers.wechatpay.sandbox.identity import Identity
from orderguard.providers.wechatpay.settings import (
    WechatPayAccount,
    WechatPaySettings,
    accounts,
    is_live_key,
    production_problems,
)
from tests.providers.wechatpay_kit import *  # noqa: F403 (fixtures)


def _live(identity: Identity) -> WechatPaySettings:
    return WechatPaySettings(
        wechatpay_mchid="1230000109",
        wechatpay_appid="wx8888888888888888",
        wechatpay_merchant_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        wechatpay_private_key_file=str(identity.path("merchant_key.pem")),
        wechatpay_apiv3_key="A" * 32,
        wechatpay_public_key_file=str(identity.path("pubkey.pem")),
        wechatpay_public_key_id="PUB_KEY_ID_0112300001092026",
        wechatpay_notify_url="https://shop.example/v1/webhooks/wechatpay",
    )


def test_without_a_mchid_the_account_is_there_but_not_configured() -> None:
    (account,) = accounts(WechatPaySettings())
    assert (account.name, account.api_key, account.variable("MCHID")) == (
        "wechatpay",
        None,
        "ORDERGUARD_WECHATPAY_MCHID",
    )


def test_a_complete_live_merchant_passes_and_carries_its_credentials(identity: Identity) -> None:
    settings = _live(identity)
    assert production_problems(settings) == []
    (account,) = accounts(settings)
    assert isinstance(account, WechatPayAccount) and account.credentials is not None
    assert account.webhook_secret == "A" * 32
    assert "PRIVATE KEY" in (account.credentials.private_key.text() or "")
    assert isinstance(build(account, 1.0), WechatPayProvider)


def test_production_refuses_a_sandbox_base_url_and_a_short_apiv3_key(identity: Identity) -> None:
    settings = replace(
        _live(identity), wechatpay_base_url="http://127.0.0.1:8090", wechatpay_apiv3_key="short"
    )
    assert [name for name, _ in production_problems(settings)] == [
        "ORDERGUARD_WECHATPAY_BASE_URL",
        "ORDERGUARD_WECHATPAY_APIV3_KEY",
    ]


def test_production_refuses_nothing_to_verify_with_and_the_sandbox_mchid(
    identity: Identity,
) -> None:
    settings = replace(
        _live(identity), wechatpay_public_key_file=None, wechatpay_mchid="1900009191"
    )
    assert [name for name, _ in production_problems(settings)] == [
        "ORDERGUARD_WECHATPAY_MCHID",
        "ORDERGUARD_WECHATPAY_PUBLIC_KEY_FILE",
    ]


def test_only_a_real_merchant_number_is_live() -> None:
    assert is_live_key("1230000109")
    assert not is_live_key("1900009191")
    assert not is_live_key("sandbox")


def test_logs_lose_the_private_key_and_the_apiv3_key(identity: Identity) -> None:
    pattern = re.compile("|".join(f"(?:{c})" for c in PLUGIN.credentials))
    pem = identity.path("merchant_key.pem").read_text()
    text = f"loaded {pem} and ORDERGUARD_WECHATPAY_APIV3_KEY={'k' * 32} done"
    cleaned = pattern.sub("[redacted]", text)
    assert cleaned == "loaded [redacted]\n and ORDERGUARD_WECHATPAY_[redacted] done"
    assert all(any(m in text for m in PLUGIN.credential_markers) for _ in PLUGIN.credentials)


def test_the_profile_takes_both_methods_and_answers_notifications_200() -> None:
    assert PROFILE.takes("wechatpay_native") and PROFILE.takes("wechatpay_h5")
    assert not PROFILE.takes("alipay_page")
    answer = reply(duplicate=True)
    assert (answer.status, answer.body) == (200, b'{"code":"SUCCESS","message":"OK"}')


def test_a_missing_key_is_named_when_the_adapter_is_built(tmp_path: Path) -> None:
    (account,) = accounts(
        WechatPaySettings(wechatpay_mchid="1230000109", wechatpay_apiv3_key="A" * 32)
    )
    with pytest.raises(ValueError, match="ORDERGUARD_WECHATPAY_PRIVATE_KEY_FILE is not set"):
        build(account, 1.0)
    (account,) = accounts(
        WechatPaySettings(
            wechatpay_mchid="1230000109",
            wechatpay_private_key_file=str(tmp_path / "absent.pem"),
        )
    )
    with pytest.raises(ValueError, match="ORDERGUARD_WECHATPAY_PRIVATE_KEY_FILE: "):
        build(account, 1.0)


def test_an_inline_pem_with_escaped_newlines_is_read(identity: Identity) -> None:
    pem = identity.path("merchant_key.pem").read_text().replace("\n", "\\n")
    (account,) = accounts(replace(_live(identity), wechatpay_private_key=pem))
    assert isinstance(account, WechatPayAccount) and account.credentials is not None
    assert account.credentials.private_key.text() == identity.path("merchant_key.pem").read_text()
