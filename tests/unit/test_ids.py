"""Identifiers: a ULID is the 26 Crockford base-32 digits of 48 bits of milliseconds and 80
random bits, so ids sort by the time they were made."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderguard.domain import ids

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's: no I, L, O, U


def reference(ms: int, random: bytes) -> str:
    """The ULID of ``ms`` and ``random`` written digit by digit, least significant first."""
    value = (ms << 80) | int.from_bytes(random, "big")
    digits = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_a_ulid_is_the_base32_of_its_time_and_randomness(ms: int, random: bytes) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "urandom", lambda n: random[:n])
        made = ids.ulid(ms)
    assert made == reference(ms, random)
    assert len(made) == 26


def test_known_values_and_order_by_time() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "urandom", lambda n: b"\xff" * n)
        assert ids.ulid(0) == "0000000000" + "Z" * 16
        latest = ids.ulid(2**48 - 1)
    assert latest == "7" + "Z" * 25
    earlier, later = ids.ulid(1_733_400_000_000), ids.ulid(1_733_400_000_001)
    assert earlier[:10] < later[:10]
    assert ids.new_id("ord").startswith("ord_") and len(ids.new_id("ord")) == 30
