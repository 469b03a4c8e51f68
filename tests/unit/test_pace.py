"""A pace lets one go per key per interval and remembers a bounded number of keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.services.pace import Pace

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_a_key_goes_once_per_interval_and_others_are_not_held_up() -> None:
    clock = Clock()
    pace = Pace(clock=clock, interval=timedelta(seconds=5))
    assert [pace.go("ord_a") for _ in range(100)] == [True] + [False] * 99
    assert pace.go("ord_b")
    clock.now += timedelta(seconds=4.9)
    assert not pace.go("ord_a")
    clock.now += timedelta(seconds=0.1)
    assert pace.go("ord_a")


def test_beyond_its_capacity_a_pace_forgets_the_oldest_keys() -> None:
    pace = Pace(clock=Clock(), interval=timedelta(seconds=5), capacity=3)
    assert all(pace.go(f"ord_{n}") for n in range(4))
    assert pace.go("ord_0")  # forgotten: it may go again
    assert not pace.go("ord_3")
