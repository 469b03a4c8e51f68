"""What ``orderguard doctor`` checks of a WeChat Pay merchant before any call: the
merchant's private key, the platform certificates and the WeChat Pay public key read, the
public key has its id, none of them is the merchant's own key (a swap the merchant
platform's downloads make easy), and the APIv3 key is 32 bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.plugin import Account, Checkup
from orderguard.providers.wechatpay import resources
from orderguard.providers.wechatpay.settings import KeyMaterial, WechatPayAccount
from orderguard.providers.wechatpay.signing import (
    PUBLIC_KEY_PREFIX,
    certificate_key,
    load_private_key,
    load_public_key,
)

Problems = list[tuple[str, str]]

#: A key, private or public.
K = TypeVar("K")


def checkup(account: Account) -> Checkup:
    """The keys' problems and the notify URL of a WeChat Pay account."""
    assert isinstance(account, WechatPayAccount) and account.credentials is not None
    found = account.credentials
    problems: Problems = []
    private = _read(found.private_key, load_private_key, problems)
    verifying = [key for _, key in _each(found.platform_certificates, certificate_key, problems)]
    public = _read(found.public_key, load_public_key, problems)
    if public is not None:
        verifying.append(public)
        if not (found.public_key_id or "").startswith(PUBLIC_KEY_PREFIX):
            problem = f"is not a public key id ({PUBLIC_KEY_PREFIX}...)"
            problems.append((account.variable("PUBLIC_KEY_ID"), problem))
    if not verifying and not problems:
        problems.append((found.public_key.variable, "nothing verifies WeChat Pay's signatures"))
    if private is not None and any(_der(k) == _der(private.public_key()) for k in verifying):
        problems.append(
            (found.public_key.variable, "holds the merchant's own key, not WeChat Pay's")
        )
    if not found.merchant_serial_no:
        problems.append((account.variable("MERCHANT_SERIAL_NO"), "is not set"))
    try:
        resources.check_key(account.webhook_secret or "")
    except ValueError as exc:
        problems.append((account.secret_variable, str(exc)))
    return Checkup(
        key_problems=problems,
        signing_variables=(
            found.private_key.variable,
            account.variable("MERCHANT_SERIAL_NO"),
            account.key_variable,
        ),
        verifying_variables=(found.public_key.variable, found.platform_certificates.variable),
        notify_url=found.notify_url or None,
        notify_variable=account.variable("NOTIFY_URL"),
    )


def _each(material: KeyMaterial, read: Callable[[str], K], problems: Problems) -> list[K]:
    """Every key ``material`` holds that reads (the problem of each other in ``problems``)."""
    try:
        texts = material.texts()
    except ValueError as exc:
        problems.append((material.variable, str(exc)))
        return []
    keys = []
    for text in texts:
        try:
            keys.append(read(text))
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            problems.append((material.variable, f"cannot be read: {exc}"))
    return keys


def _read(material: KeyMaterial, read: Callable[[str], K], problems: Problems) -> K | None:
    """The one key ``material`` holds, if it reads."""
    found = _each(material, read, problems)
    return found[0] if found else None


def _der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
