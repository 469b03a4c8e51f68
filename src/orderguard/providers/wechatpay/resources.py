"""The encrypted ``resource`` of a notification: AEAD_AES_256_GCM under the APIv3 key.

The nonce (12 characters) and the associated data travel as text beside the base64
ciphertext (which ends with the 16-byte tag), exactly as WeChat Pay sends them.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: The only algorithm WeChat Pay uses for notification resources.
ALGORITHM = "AEAD_AES_256_GCM"
#: The APIv3 key is 32 bytes (ASCII characters) long.
KEY_BYTES = 32


class ResourceRefused(ValueError):
    """A resource that cannot be decrypted (wrong key, tampered, unknown algorithm)."""


def check_key(apiv3_key: str) -> bytes:
    """The APIv3 key as bytes; :class:`ValueError` unless it is 32 bytes."""
    key = apiv3_key.encode()
    if len(key) != KEY_BYTES:
        raise ValueError(f"the APIv3 key must be {KEY_BYTES} bytes, not {len(key)}")
    return key


def decrypt(apiv3_key: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object inside ``resource``; :class:`ResourceRefused` when it does not open."""
    if resource.get("algorithm") != ALGORITHM:
        raise ResourceRefused(f"unknown resource algorithm {resource.get('algorithm')!r}")
    try:
        data = AESGCM(check_key(apiv3_key)).decrypt(
            str(resource["nonce"]).encode(),
            base64.b64decode(str(resource["ciphertext"]), validate=True),
            str(resource.get("associated_data") or "").encode(),
        )
        found = json.loads(data)
    except (InvalidTag, KeyError, binascii.Error, ValueError) as exc:
        raise ResourceRefused(f"the resource does not decrypt: {type(exc).__name__}") from exc
    if not isinstance(found, dict):
        raise ResourceRefused("the resource is not a JSON object")
    return found


def encrypt(
    apiv3_key: str, plain: Mapping[str, Any], *, original_type: str, associated_data: str
) -> dict[str, str]:
    """A resource carrying ``plain`` (the sandbox and the tests)."""
    nonce = secrets.token_hex(6)  # 12 characters
    data = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = AESGCM(check_key(apiv3_key)).encrypt(nonce.encode(), data, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }
