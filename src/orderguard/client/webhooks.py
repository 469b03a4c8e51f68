"""Verifying the merchant webhooks orderguard sends (Standard Webhooks).

Each delivery carries ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds of
this try) and ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>``, one per
secret valid at the sender (two during a rotation). The signed text is
``"{id}.{timestamp}.{body}"`` and the key is the secret's bytes after ``whsec_``, base64
decoded. A delivery is accepted when one signature matches one of the receiver's secrets
(compared in constant time) and its timestamp is within the tolerance of now, so a
captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from orderguard.client.errors import WebhookVerificationError
from orderguard.client.models import WebhookEvent

#: Seconds a delivery's timestamp may be away from now (either way).
DEFAULT_TOLERANCE_S = 300
_PREFIX = "whsec_"
_HEADERS = ("id", "timestamp", "signature")


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> WebhookEvent:
    """The delivered event, once its signature and timestamp are checked; raises
    :class:`WebhookVerificationError` otherwise. Pass the body exactly as received (the
    raw bytes, before any JSON parsing) and, during a rotation, both secrets."""
    raw = body.encode() if isinstance(body, str) else body
    found = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (found.get(f"webhook-{n}") for n in _HEADERS)
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    _check_timestamp(stamp, tolerance_s, time.time() if now is None else now)
    signed = f"{msg_id}.{stamp}.".encode() + raw
    expected = [_sign(key, signed) for key in _keys(secret)]
    offered = [part.split(",", 1)[1] for part in signatures.split() if part.startswith("v1,")]
    if not any(hmac.compare_digest(e, o.encode()) for e in expected for o in offered):
        raise WebhookVerificationError("no signature matches the secret")
    try:
        return WebhookEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise WebhookVerificationError(f"signed, but not an orderguard event: {exc}") from exc


def _check_timestamp(stamp: str, tolerance_s: float, now: float) -> None:
    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not a number: {stamp!r}") from None
    if abs(now - sent) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {sent} is more than {tolerance_s:g} s from now"
        )


def _keys(secret: str | Sequence[str]) -> list[bytes]:
    """The HMAC keys of the receiver's secrets (``whsec_`` + base64)."""
    secrets_ = [secret] if isinstance(secret, str) else list(secret)
    if not secrets_:
        raise ValueError("give at least one signing secret")
    keys = []
    for value in secrets_:
        try:
            keys.append(base64.b64decode(value.removeprefix(_PREFIX), validate=True))
        except binascii.Error:
            raise ValueError("a signing secret is whsec_ followed by base64") from None
    return keys


def _sign(key: bytes, signed: bytes) -> bytes:
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
