"""The WeChat Pay sandbox's own rules: it refuses what the merchant did not sign, signs with
either kind of key, and prints the settings that point orderguard at it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orderguard.providers.base import ProviderRejected
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.errors import UnverifiedResponse
from orderguard.providers.wechatpay.keys import verifying_keys
from orderguard.providers.wechatpay.sandbox.__main__ import main
from orderguard.providers.wechatpay.sandbox.identity import Identity, load_identity
from orderguard.providers.wechatpay.signing import load_private_key
from tests.providers.wechatpay_kit import *  # noqa: F403 (fixtures)
from tests.providers.wechatpay_kit import admin, charge, ledger


def _adapter(identity: Identity, url: str, **changes: object) -> WechatPayProvider:
    options: dict[str, object] = {
        "mchid": identity.mchid,
        "appid": identity.appid,
        "merchant_serial_no": identity.merchant_serial_no,
        "private_key_pem": identity.path("merchant_key.pem").read_text(),
        "apiv3_key": identity.apiv3_key,
        "verifying_keys": verifying_keys(
            certificates=[identity.path("platform_cert.pem").read_text()],
            public_key_pem=identity.path("pubkey.pem").read_text(),
            public_key_id=identity.public_key_id,
        ),
        "notify_url": "http://127.0.0.1:9/hooks",
        "base_url": url,
        **changes,
    }
    return WechatPayProvider(**options)  # type: ignore[arg-type]


async def test_a_request_signed_with_another_key_is_refused_and_nothing_is_placed(
    identity: Identity, wechat_sandbox: str, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    adapter = _adapter(identity, wechat_sandbox, private_key_pem=pem)
    try:
        with pytest.raises(ProviderRejected, match="SIGN_ERROR"):
            await adapter.create_payment(charge())
    finally:
        await adapter.aclose()
    assert (await ledger(wechat_sandbox))["trades"] == []


async def test_answers_signed_by_certificate_or_public_key_both_verify(
    identity: Identity, wechat_sandbox: str
) -> None:
    adapter = _adapter(identity, wechat_sandbox)
    await admin(wechat_sandbox, mode="certificate")
    await adapter.create_payment(charge())
    await admin(wechat_sandbox, mode="public_key")
    await adapter.create_payment(charge())
    await adapter.aclose()
    assert len((await ledger(wechat_sandbox))["trades"]) == 2


async def test_an_answer_signed_by_a_key_the_merchant_does_not_hold_is_not_believed(
    identity: Identity, wechat_sandbox: str
) -> None:
    only_certificate = verifying_keys(certificates=[identity.path("platform_cert.pem").read_text()])
    adapter = _adapter(identity, wechat_sandbox, verifying_keys=only_certificate)
    await admin(wechat_sandbox, mode="public_key")
    try:
        with pytest.raises(UnverifiedResponse):
            await adapter.create_payment(charge())
    finally:
        await adapter.aclose()


def test_the_identity_is_made_once_and_kept(identity_dir: Path, identity: Identity) -> None:
    reloaded = load_identity(identity_dir)
    assert reloaded.merchant_serial_no == identity.merchant_serial_no
    assert reloaded.public_key_id.startswith("PUB_KEY_ID_")
    assert len(reloaded.apiv3_key.encode()) == 32
    assert load_private_key(identity.path("merchant_key.pem").read_bytes()).key_size == 2048


def test_print_config_names_every_setting_orderguard_needs(
    identity_dir: Path, identity: Identity, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--print-config", "--data-dir", str(identity_dir), "--port", "8091"])
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert printed["ORDERGUARD_WECHATPAY_MCHID"] == "1900009191"
    assert printed["ORDERGUARD_WECHATPAY_BASE_URL"] == "http://127.0.0.1:8091"
    assert printed["ORDERGUARD_WECHATPAY_PUBLIC_KEY_ID"] == identity.public_key_id
    assert printed["ORDERGUARD_WECHATPAY_APIV3_KEY"] == identity.apiv3_key
    assert Path(printed["ORDERGUARD_WECHATPAY_PRIVATE_KEY_FILE"]).exists()


async def test_the_shopper_cannot_pay_before_scanning(
    provider: WechatPayProvider, wechat_sandbox: str
) -> None:
    request = charge()
    await provider.create_payment(request)
    async with httpx.AsyncClient(base_url=wechat_sandbox) as client:
        refused = await client.post(f"/sandbox/shopper/{request.attempt_id}/pay")
    assert (refused.status_code, refused.json()["code"]) == (409, "NOT_SCANNED")
