"""What ``orderguard doctor`` checks of an Alipay app before any call: its two keys read,
and Alipay's public key is not the app's own (the console shows both: the app's public key
is the one uploaded to Alipay, Alipay's public key the one it gives back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.alipay import keys
from orderguard.providers.alipay.settings import AlipayAccount
from orderguard.providers.plugin import Account, Checkup

#: A key, private or public.
K = TypeVar("K")


def checkup(account: Account) -> Checkup:
    """The keys' problems and the notify URL of an Alipay account."""
    assert isinstance(account, AlipayAccount), "Alipay's accounts come from its settings"
    private_var, public_var = account.variable("APP_PRIVATE_KEY"), account.secret_variable
    found: list[tuple[str, str]] = []
    private = _read(private_var, account.app_private_key, keys.private_key, found)
    public = _read(public_var, account.webhook_secret, keys.public_key, found)
    if private is not None and public is not None and _der(public) == _der(private.public_key()):
        found.append((public_var, "is the app's own public key, not Alipay's (支付宝公钥)"))
    return Checkup(
        key_problems=found,
        signing_variables=(private_var, account.key_variable),
        verifying_variables=(public_var,),
        notify_url=account.notify_url,
        notify_variable=account.variable("NOTIFY_URL"),
    )


def _read(
    variable: str, value: str | None, read: Callable[[str], K], found: list[tuple[str, str]]
) -> K | None:
    """The key ``value`` holds; ``None`` (and the problem in ``found``) when it does not."""
    if not (value or "").strip():
        found.append((variable, "is not set"))
        return None
    try:
        return read(str(value))
    except keys.UnreadableKey as exc:
        found.append((variable, str(exc)))
        return None


def _der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
