"""Stripe's webhook signature scheme: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256>``.

The signed payload is ``f"{t}.{body}"`` and the key is the whole ``whsec_...`` secret, exactly
as Stripe does it, so a body signed here verifies with ``stripe.Webhook.construct_event``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from orderguard.providers.base import InvalidWebhook

#: The header carrying the signature.
SIGNATURE_HEADER = "Stripe-Signature"
#: Seconds a signature stays acceptable, as Stripe's SDK defaults to.
DEFAULT_TOLERANCE_S = 300


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, *, timestamp: int) -> str:
    """The ``Stripe-Signature`` value for ``payload`` signed at ``timestamp``."""
    return f"t={timestamp},v1={_digest(payload, secret, timestamp)}"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value looked up without regard to case."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _parse(header: str) -> tuple[int, list[str]]:
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [int(value) for key, value in pairs if key.strip() == "t"]
    signatures = [value for key, value in pairs if key.strip() == "v1"]
    if len(timestamps) != 1 or not signatures:
        raise ValueError("malformed signature header")
    return timestamps[0], signatures


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, tolerance_s: int, now: float
) -> None:
    """Raise :class:`InvalidWebhook` unless ``header`` signs ``payload`` recently enough."""
    if not header:
        raise InvalidWebhook("missing signature header")
    try:
        timestamp, signatures = _parse(header)
    except ValueError as exc:
        raise InvalidWebhook("malformed signature header") from exc
    expected = _digest(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected, sig) for sig in signatures):
        raise InvalidWebhook("signature does not match")
    if abs(now - timestamp) > tolerance_s:
        raise InvalidWebhook("signature timestamp outside the tolerance")
