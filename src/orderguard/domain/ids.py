"""Identifiers: a type prefix and a time-ordered ULID body (``ord_01J...``)."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, sortable by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    """A new identifier such as ``ord_01JD8...``; ``prefix`` names the kind of thing."""
    return f"{prefix}_{ulid()}"


def new_token() -> str:
    """An unguessable URL-safe token carrying 192 random bits."""
    return secrets.token_urlsafe(24)
