"""The keys that verify WeChat Pay, by the serial ``Wechatpay-Serial`` names: platform
certificates and the WeChat Pay public key, together (a merchant moving from one to the
other receives answers signed either way for a while)."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.wechatpay.signing import (
    PUBLIC_KEY_PREFIX,
    certificate_key,
    load_public_key,
)


def verifying_keys(
    *,
    certificates: Iterable[str] = (),
    public_key_pem: str | None = None,
    public_key_id: str | None = None,
) -> dict[str, rsa.RSAPublicKey]:
    """Serial -> key for every certificate PEM and the public key (with its id)."""
    keys = dict(certificate_key(pem) for pem in certificates)
    if public_key_pem:
        if not (public_key_id or "").startswith(PUBLIC_KEY_PREFIX):
            raise ValueError(f"a WeChat Pay public key needs its id ({PUBLIC_KEY_PREFIX}...)")
        keys[str(public_key_id)] = load_public_key(public_key_pem)
    if not keys:
        raise ValueError("no platform certificate and no WeChat Pay public key: nothing verifies")
    return keys
