"""Alipay's settings, account, adapter build, live gateway rule, credential patterns, lab."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest

from orderguard.providers.alipay import keys
from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.lab import LAB
from orderguard.providers.alipay.plugin import PLUGIN, PROFILE, build
from orderguard.providers.alipay.sandbox.server import print_config
from orderguard.providers.alipay.settings import (
    AlipayAccount,
    AlipaySettings,
    accounts,
    is_live_account,
    is_live_gateway,
)
from orderguard.providers.base import PaymentOutcome
from tests.providers import alipay_support
from tests.providers.alipay_support import KeyPairs, alipay_request

# the shared fixtures, by name
key_pairs = alipay_support.key_pairs


@pytest.mark.parametrize(
    ("url", "live"),
    [
        ("https://openapi.alipay.com/gateway.do", True),
        ("http://openapi.alipay.com/gateway.do", False),
        ("https://openapi-sandbox.dl.alipaydev.com/gateway.do", False),
        ("https://openapi.alipaydev.com/gateway.do", False),
        ("http://127.0.0.1:8090/gateway.do", False),
        ("https://openapi.alipay.com.evil.test/gateway.do", False),
    ],
)
def test_only_the_production_gateway_is_live(url: str, live: bool) -> None:
    assert is_live_gateway(url) is live


def test_the_settings_make_one_account_carrying_what_the_adapter_needs(tmp_path: Path) -> None:
    settings = AlipaySettings(
        alipay_app_id="2021000000000001",
        alipay_app_private_key=str(tmp_path / "app.pem"),
        alipay_public_key="PUBLIC",
        alipay_seller_id="2088000000000009",
        alipay_notify_url="https://shop.test/v1/webhooks/alipay",
    )
    [account] = accounts(settings)
    assert isinstance(account, AlipayAccount)
    assert (account.name, account.api_key, account.webhook_secret) == (
        "alipay",
        "2021000000000001",
        "PUBLIC",
    )
    assert account.base_url == "https://openapi.alipay.com/gateway.do"
    assert account.variable("APP_PRIVATE_KEY") == "ORDERGUARD_ALIPAY_APP_PRIVATE_KEY"
    assert is_live_account(account)
    assert "app.pem" not in repr(account)  # the private key setting never shows
    assert not is_live_account(accounts(AlipaySettings())[0])


async def test_the_adapter_is_built_from_key_files(tmp_path: Path, key_pairs: KeyPairs) -> None:
    private_file = tmp_path / "app.pem"
    private_file.write_text(keys.private_pem(key_pairs.app))
    public_one_line = keys.bare_base64(keys.public_pem(key_pairs.alipay.public_key()))
    [account] = accounts(
        AlipaySettings(
            alipay_app_id="2021000000000001",
            alipay_app_private_key=str(private_file),
            alipay_public_key=public_one_line,
            alipay_gateway_url="https://openapi-sandbox.dl.alipaydev.com/gateway.do",
        )
    )
    adapter = build(account, 5.0)
    try:
        assert isinstance(adapter, AlipayProvider)
        assert adapter.livemode is False
        result = await adapter.create_payment(alipay_request())
        assert result.redirect_url is not None
        assert result.redirect_url.startswith(
            "https://openapi-sandbox.dl.alipaydev.com/gateway.do?"
        )
    finally:
        await adapter.aclose()


def test_the_credential_patterns_take_out_private_keys(key_pairs: KeyPairs) -> None:
    pem = keys.private_pem(key_pairs.app).strip()
    line = f"loaded key {pem} and {keys.bare_base64(pem)} done"
    for pattern in PLUGIN.credentials:
        line = re.sub(pattern, "[redacted]", line)
    assert "PRIVATE KEY" not in line and keys.bare_base64(pem)[:40] not in line
    assert line == "loaded key [redacted] and [redacted] done"
    assert any(marker in pem for marker in PLUGIN.credential_markers)


def test_the_profile_routes_alipay_methods_and_answers_success() -> None:
    assert PROFILE.takes("alipay_page") and PROFILE.takes("alipay_wap")
    assert not PROFILE.takes("pm_card_visa") and not PROFILE.takes("wechatpay_native")
    assert PROFILE.capabilities.retrieve_by_reference
    assert not PROFILE.capabilities.find_by_order_id
    assert not PROFILE.capabilities.list_recent_charges
    assert PROFILE.reply(duplicate=False).body == b"success"


def test_print_config_names_the_keys_the_sandbox_made(tmp_path: Path) -> None:
    lines = dict(
        line.split("=", 1) for line in print_config("127.0.0.1", 8090, str(tmp_path)).splitlines()
    )
    assert lines["ORDERGUARD_ALIPAY_GATEWAY_URL"] == "http://127.0.0.1:8090/gateway.do"
    assert lines["ORDERGUARD_ALIPAY_APP_ID"] == "9021000100000001"
    keys.private_key(lines["ORDERGUARD_ALIPAY_APP_PRIVATE_KEY"])
    keys.public_key(lines["ORDERGUARD_ALIPAY_PUBLIC_KEY"])
    again = print_config("127.0.0.1", 8090, str(tmp_path))  # made once, then read
    assert again == print_config("127.0.0.1", 8090, str(tmp_path))
    assert (
        Path(lines["ORDERGUARD_ALIPAY_PUBLIC_KEY"]).read_text().startswith("-----BEGIN PUBLIC KEY")
    )


class _Settings:
    sandbox_db = ""


async def test_the_lab_starts_a_sandbox_the_built_adapter_charges_at(tmp_path: Path) -> None:
    settings = _Settings()
    settings.sandbox_db = str(tmp_path / "sandbox.db")
    with ExitStack() as resources:
        account = LAB.start(settings, resources, "unused", "http://127.0.0.1:9/notify")
        adapter = build(account, 5.0)
        try:
            created = await adapter.create_payment(alipay_request())
            assert created.provider_ref is not None
            found = await adapter.retrieve_payment(created.provider_ref)
            assert found.outcome is PaymentOutcome.ACTION_REQUIRED
            assert found.metadata["alipay_state"] == "not_created"
        finally:
            await adapter.aclose()
