""" "Stuck" is defined once (``domain/stuck.py``), and the alert rule pages on the same
states and the same time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderguard.domain.states import OrderState
from orderguard.domain.stuck import STUCK_AFTER, STUCK_STATES, is_stuck, stuck_horizon

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_stuck_means_waiting_on_the_provider_for_30_minutes() -> None:
    assert STUCK_STATES == {OrderState.PAYMENT_PENDING, OrderState.PAYMENT_UNKNOWN}
    assert timedelta(minutes=30) == STUCK_AFTER
    assert stuck_horizon(now=NOW) == datetime(2026, 12, 2, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("state", ["payment_pending", "payment_unknown"])
def test_a_payment_left_alone_past_30_minutes_is_stuck(state: str) -> None:
    at = OrderState(state)
    assert is_stuck(at, changed_at=NOW - timedelta(minutes=31), now=NOW)
    assert not is_stuck(at, changed_at=NOW - timedelta(minutes=30), now=NOW)
    assert is_stuck(
        at, changed_at=NOW - timedelta(minutes=11), now=NOW, after=timedelta(minutes=10)
    )


@pytest.mark.parametrize(
    "state", ["received", "action_required", "payment_failed", "paid", "refunded", "cancelled"]
)
def test_an_order_waiting_on_the_shopper_or_finished_is_never_stuck(state: str) -> None:
    assert not is_stuck(OrderState(state), changed_at=NOW - timedelta(days=3), now=NOW)


def test_the_stuck_orders_alert_pages_on_the_stuck_states_after_30_minutes() -> None:
    rules = ALERTS.read_text()
    start = rules.index("- alert: OrderguardStuckOrders")
    expr = rules[start:].split("expr:", 1)[1].splitlines()[0]
    states = re.search(r'state=~"([^"]+)"', expr)
    threshold = re.search(r">\s*(\d+)\s*$", expr)

    assert states is not None and threshold is not None, expr
    assert set(states[1].split("|")) == {"payment_pending", "payment_unknown"}
    assert {OrderState(s) for s in states[1].split("|")} == STUCK_STATES
    assert int(threshold[1]) == 1800 == STUCK_AFTER.total_seconds()
