"""Identifiers: a type prefix and a time-ordered ULID body (``ord_01J...``)."""

from __future__ import annotations

import base64
import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: RFC 4648's base32 alphabet written in Crockford's.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, sortable by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    # the 26 five-bit digits of the 130-bit number: base32 of it padded to 160 bits
    digits = base64.b32encode((value << 30).to_bytes(20, "big"))[:26]
    return digits.translate(_TO_CROCKFORD).decode()


def new_id(prefix: str) -> str:
    """A new identifier such as ``ord_01JD8...``; ``prefix`` names the kind of thing."""
    return f"{prefix}_{ulid()}"


def new_token() -> str:
    """An unguessable URL-safe token carrying 192 random bits."""
    return secrets.token_urlsafe(24)
