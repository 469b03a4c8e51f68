"""The relay's retry policy: exponential, capped, jittered; dead after the last attempt."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orderguard.domain.delivery import next_after_failure, retry_delay

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_waits_double_within_half_and_whole_of_each_step_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempts, step in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (9, 60.0), (40, 60.0)):
        waits = [retry_delay(attempts, base_s=2, cap_s=60, rng=rng) for _ in range(200)]
        assert all(timedelta(seconds=step / 2) <= w <= timedelta(seconds=step) for w in waits)
        assert len(set(waits)) > 100  # jittered: relays retrying together spread out


def test_a_delivery_is_dead_once_it_used_its_last_attempt() -> None:
    delay = timedelta(seconds=3)
    assert next_after_failure(1, max_attempts=3, now=NOW, delay=delay) == NOW + delay
    assert next_after_failure(2, max_attempts=3, now=NOW, delay=delay) == NOW + delay
    assert next_after_failure(3, max_attempts=3, now=NOW, delay=delay) is None
    assert next_after_failure(1, max_attempts=1, now=NOW, delay=delay) is None
