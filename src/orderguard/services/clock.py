"""Where services get the time from, so tests can set it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: A source of aware UTC datetimes.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
