"""RSA2 (SHA256withRSA, PKCS#1 v1.5, base64) as the Open Platform applies it.

- **Requests**: every parameter but ``sign`` (``sign_type`` included), empty values left
  out, sorted by name, joined as ``k=v`` with ``&``, values as sent (not URL-encoded).
- **Notifications**: the same, without ``sign`` *and* ``sign_type``.
- **Gateway responses**: the raw text of the ``<method>_response`` (or ``error_response``)
  JSON value exactly as sent; never re-serialised, since any change of spacing, key order
  or escaping changes the bytes signed (:func:`signed_response`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: The only signature type this package sends or accepts.
SIGN_TYPE = "RSA2"


def content(params: Mapping[str, str], *, leave_out: Iterable[str] = ("sign",)) -> str:
    """The string signed: sorted ``k=v`` pairs joined by ``&``, empty values left out."""
    skipped = set(leave_out)
    pairs = sorted((k, v) for k, v in params.items() if k not in skipped and v not in ("", None))
    return "&".join(f"{k}={v}" for k, v in pairs)


def notification_content(params: Mapping[str, str]) -> str:
    """What a notification's ``sign`` covers: everything but ``sign`` and ``sign_type``."""
    return content(params, leave_out=("sign", "sign_type"))


def sign(text: str, key: rsa.RSAPrivateKey) -> str:
    """The base64 RSA2 signature of ``text`` (UTF-8)."""
    raw = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def verify(text: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) is ``key``'s RSA2 signature of ``text``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, text.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def signed_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """``params`` with their ``sign`` (request rule) added."""
    return {**params, "sign": sign(content(params), key)}


@dataclass(frozen=True, slots=True)
class SignedResponse:
    """A gateway answer split into what was signed and its signature."""

    #: The top-level key the answer came under (``alipay_trade_query_response``).
    key: str
    #: The raw JSON text of its value, exactly as sent.
    raw: str
    #: Its parsed value.
    body: Mapping[str, object]
    #: The ``sign`` beside it, if any.
    sign: str | None


def response_key(method: str) -> str:
    """``alipay.trade.query`` -> ``alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def top_level_members(text: str) -> dict[str, tuple[int, int]]:
    """Each top-level member of a JSON object text -> the span of its raw value.

    Walks the object with the standard decoder's ``raw_decode`` so every span is exactly
    where the value's text starts and ends; raises :class:`ValueError` when ``text`` is not
    one JSON object.
    """
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _skip(text, i + 1)
    if text[i : i + 1] == "}":
        return spans
    while True:
        name, i = decoder.raw_decode(text, i)
        if not isinstance(name, str):
            raise ValueError("object member name is not a string")
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            raise ValueError("expected ':'")
        start = _skip(text, i + 1)
        _, end = decoder.raw_decode(text, start)
        spans[name] = (start, end)
        i = _skip(text, end)
        if text[i : i + 1] == "}":
            if _skip(text, i + 1) != len(text):
                raise ValueError("text after the JSON object")
            return spans
        if text[i : i + 1] != ",":
            raise ValueError("expected ',' or '}'")
        i = _skip(text, i + 1)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def signed_response(text: str, method: str) -> SignedResponse:
    """Split a gateway answer to ``method``; :class:`ValueError` when it is not one."""
    spans = top_level_members(text)
    key = response_key(method)
    if key not in spans:
        key = "error_response"
    if key not in spans:
        raise ValueError(f"no {response_key(method)} in the answer")
    start, end = spans[key]
    raw = text[start:end]
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError(f"{key} is not an object")
    signature = None
    if "sign" in spans:
        found = json.loads(text[slice(*spans["sign"])])
        signature = found if isinstance(found, str) else None
    return SignedResponse(key, raw, body, signature)


def response_text(key: str, raw: str, signing_key: rsa.RSAPrivateKey | None) -> str:
    """A gateway answer as Alipay writes it: ``{"<key>":<raw>,"sign":"..."}`` (sandbox)."""
    if signing_key is None:
        return f'{{"{key}":{raw}}}'
    return f'{{"{key}":{raw},"sign":"{sign(raw, signing_key)}"}}'
