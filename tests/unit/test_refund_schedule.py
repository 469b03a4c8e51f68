"""When a pending refund is looked up again, and when a person is asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.refund_schedule import RefundCheckSchedule

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_each_lookup_waits_its_own_wait_then_the_last_one_again() -> None:
    schedule = RefundCheckSchedule((MIN, 10 * MIN, 60 * MIN))
    assert schedule.first_wait == MIN
    waits = [schedule.next_at(checks=n, now=T0) - T0 for n in range(1, 6)]
    assert waits == [10 * MIN, 60 * MIN, 60 * MIN, 60 * MIN, 60 * MIN]


def test_the_schedule_runs_out_after_one_lookup_per_wait() -> None:
    schedule = RefundCheckSchedule((MIN, 10 * MIN, 60 * MIN))
    assert [schedule.exhausted(checks=n) for n in range(5)] == [False, False, False, True, True]


def test_the_default_schedule_lasts_days_not_weeks() -> None:
    total = sum(RefundCheckSchedule().waits, timedelta(0))
    assert timedelta(days=3) < total < timedelta(days=10)  # inside retry_refunds' 10 days


@pytest.mark.parametrize("waits", [(), (MIN, timedelta(0)), (-MIN,)])
def test_a_schedule_needs_positive_waits(waits: tuple[timedelta, ...]) -> None:
    with pytest.raises(ValueError, match="positive wait"):
        RefundCheckSchedule(waits)


def test_scaling_multiplies_every_wait() -> None:
    assert RefundCheckSchedule((MIN, 2 * MIN)).scaled(0.5).waits == (MIN / 2, MIN)
