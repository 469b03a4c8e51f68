"""Reading the RSA keys of public-key mode: the app's private key and Alipay's public key.

A setting holds either the key itself or the path of a file holding it. The key may be PEM
(``-----BEGIN PRIVATE KEY-----``, PKCS#8 or PKCS#1) or, as Alipay's key tool and console
hand it out, the bare base64 of the DER bytes on one line. Nothing here logs or repeats a
key's text: an error names the setting's shape, never its value.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: The start of every PEM block.
PEM_MARKER = "-----BEGIN"


class UnreadableKey(ValueError):
    """A key setting holds neither a readable key nor the path of a file holding one."""


def key_text(value: str) -> str:
    """The key's text: ``value`` itself when it is a key, else the file it names.

    A key (PEM, or bare base64 of at least 100 characters) is taken as is; anything else
    must be the path of a readable file.
    """
    stripped = value.strip()
    if stripped.startswith(PEM_MARKER) or _looks_like_base64(stripped):
        return stripped
    path = Path(stripped).expanduser()
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableKey(
            "the key setting is neither a PEM or base64 key nor a readable file "
            f"({exc.__class__.__name__})"
        ) from None


def _looks_like_base64(text: str) -> bool:
    return len(text) >= 100 and all(c.isalnum() or c in "+/=\n\r" for c in text)


def _der(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableKey("the key is neither PEM nor valid base64") from None


def private_key(value: str, *, trusted: bool = False) -> rsa.RSAPrivateKey:
    """The app's RSA private key from a setting (key text or file path).

    ``trusted``: the key was made here (the sandbox's own), so the costly consistency
    check of its numbers (about 0.1 s) is skipped.
    """
    text = key_text(value)
    skip = {"unsafe_skip_rsa_key_validation": trusted}
    try:
        if text.startswith(PEM_MARKER):
            key = serialization.load_pem_private_key(text.encode(), password=None, **skip)
        else:
            key = serialization.load_der_private_key(_der(text), password=None, **skip)
    except (ValueError, TypeError):
        raise UnreadableKey(
            "the app private key cannot be read (PEM or base64 DER, no password)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnreadableKey("the app private key is not an RSA key (RSA2 needs RSA)")
    return key


def public_key(value: str) -> rsa.RSAPublicKey:
    """Alipay's RSA public key from a setting (key text or file path)."""
    text = key_text(value)
    try:
        if text.startswith(PEM_MARKER):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError):
        raise UnreadableKey("the Alipay public key cannot be read (PEM or base64 DER)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnreadableKey("the Alipay public key is not an RSA key")
    return key


def new_private_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit key (the sandbox's own, and the test app's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """``key`` as PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    """``key`` as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def bare_base64(pem: str) -> str:
    """A PEM key as Alipay's console writes it: the base64 body on one line."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))
