"""WeChat Pay API v3 signatures (RSA SHA-256, PKCS#1 v1.5), both ways.

Requests: the merchant signs ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`` with its private
key and sends it in ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=...,...``.
Responses and notifications: WeChat Pay signs ``timestamp\\nnonce\\nbody\\n`` and sends the
parts in the ``Wechatpay-*`` headers; ``Wechatpay-Serial`` names the key that verifies it,
either a platform certificate's serial number or a WeChat Pay public key's id
(``PUB_KEY_ID_...``). Merchants move from certificates to the public key, so a verifier
holds both kinds at once.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: The signature scheme of ``Authorization`` and ``Wechatpay-Signature-Type``.
SCHEME = "WECHATPAY2-SHA256-RSA2048"
#: The headers of a signed response or notification.
TIMESTAMP = "Wechatpay-Timestamp"
NONCE = "Wechatpay-Nonce"
SIGNATURE = "Wechatpay-Signature"
SERIAL = "Wechatpay-Serial"
#: The id prefix of a WeChat Pay public key (the other kind of serial is a certificate's).
PUBLIC_KEY_PREFIX = "PUB_KEY_ID_"
#: WeChat Pay's probe notifications carry a signature starting so; they are never genuine.
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
#: How far (seconds) a signed timestamp may be from our clock, either way.
DEFAULT_TOLERANCE_S = 300


class SignatureRefused(ValueError):
    """A response or notification that does not prove it comes from WeChat Pay."""


def new_nonce() -> str:
    """A fresh random nonce (32 characters, as WeChat Pay's own)."""
    return secrets.token_hex(16).upper()


def sign(private_key: rsa.RSAPrivateKey, message: str) -> str:
    """The base64 RSA SHA-256 PKCS#1 v1.5 signature of ``message`` (UTF-8)."""
    raw = private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def signature_matches(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``message`` under ``public_key``."""
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True),
            message,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> str:
    """What a request's signature covers; ``url`` is the path with its query string."""
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a response's or notification's signature covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header of one request."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    signature = sign(private_key, request_message(method, url, stamp, nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{stamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an ``Authorization`` header; :class:`SignatureRefused` when it is not
    WeChat Pay's scheme."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureRefused(f"not a {SCHEME} authorization")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == '"':
            fields[key] = value[1:-1]
    return fields


def signed_headers(
    private_key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The ``Wechatpay-*`` headers WeChat Pay sends with ``body`` (the sandbox, tests)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    message = answer_message(stamp, nonce, body).decode()
    return {
        TIMESTAMP: stamp,
        NONCE: nonce,
        SIGNATURE: sign(private_key, message),
        SERIAL: serial,
        "Wechatpay-Signature-Type": SCHEME,
    }


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value regardless of the case of its name ('' when absent)."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


@dataclass(frozen=True)
class Verifier:
    """Verifies WeChat Pay's answers with the keys it knows, by serial: platform
    certificates' serial numbers and public key ids alike."""

    keys: Mapping[str, rsa.RSAPublicKey]
    tolerance_s: int = DEFAULT_TOLERANCE_S
    clock: Callable[[], float] = field(default=time.time)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return when ``body`` is signed by a known key within the time tolerance;
        otherwise :class:`SignatureRefused` saying why."""
        signature = header(headers, SIGNATURE)
        if not signature:
            raise SignatureRefused(f"no {SIGNATURE} header")
        if signature.startswith(PROBE_PREFIX):
            raise SignatureRefused("a WeChat Pay signature probe, not a real notification")
        serial = header(headers, SERIAL)
        key = self.keys.get(serial)
        if key is None:
            raise SignatureRefused(f"no verifying key has the serial {serial!r}")
        stamp, nonce = header(headers, TIMESTAMP), header(headers, NONCE)
        if not stamp.isdigit() or abs(self.clock() - int(stamp)) > self.tolerance_s:
            raise SignatureRefused(f"timestamp {stamp!r} is outside {self.tolerance_s} s")
        if not signature_matches(key, answer_message(stamp, nonce, body), signature):
            raise SignatureRefused("the signature does not verify")


def load_private_key(pem: str | bytes, *, own: bool = False) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1). ``own``: a key this process made
    itself (the sandbox's), whose costly consistency checks are skipped."""
    key = serialization.load_pem_private_key(
        _pem_bytes(pem), password=None, unsafe_skip_rsa_key_validation=own
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant private key is not an RSA key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (the WeChat Pay public key)."""
    key = serialization.load_pem_public_key(_pem_bytes(pem))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the WeChat Pay public key is not an RSA key")
    return key


def certificate_key(pem: str | bytes) -> tuple[str, rsa.RSAPublicKey]:
    """A platform certificate's serial number (upper-case hex, as ``Wechatpay-Serial``
    writes it) and its public key."""
    cert = x509.load_pem_x509_certificate(_pem_bytes(pem))
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the platform certificate does not hold an RSA key")
    return certificate_serial(cert.serial_number), key


def certificate_serial(number: int) -> str:
    """A certificate serial number as WeChat Pay writes it."""
    return f"{number:X}"


def _pem_bytes(pem: str | bytes) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem
