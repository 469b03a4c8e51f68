"""What an order's state means to a waiting shop (an unknown outcome is never "failed"),
and ``wait_for_settlement`` polling with growing waits until it knows or its time is up."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orderguard.client import OrderguardClient
from orderguard.client.settlement import outcome_of, poll_wait_s


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("paid", "paid"),
        ("refunded", "paid"),
        ("payment_failed", "failed"),
        ("cancelled", "failed"),
        ("action_required", "action_required"),
        ("received", "confirming"),
        ("payment_pending", "confirming"),
        ("payment_unknown", "confirming"),
        ("a_state_added_later", "confirming"),
    ],
)
def test_each_state_means(state: str, outcome: str) -> None:
    assert outcome_of(state) == outcome


def test_polls_wait_longer_each_time_up_to_a_ceiling() -> None:
    waits = [poll_wait_s(polls=n, first_s=0.5, max_s=3.0) for n in range(1, 6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def detail(state: str) -> dict[str, Any]:
    return {
        "id": "ord_1",
        "state": state,
        "merchant_reference": None,
        "amount_total": 100,
        "currency": "EUR",
        "livemode": False,
        "created_at": "2026-12-04T12:00:00Z",
        "updated_at": "2026-12-04T12:00:00Z",
        "next_action": None,
        "status_url": "http://127.0.0.1/orders/ord_1?token=t",
        "items": [],
        "customer": {
            "email": "a@example.com",
            "name": "A",
            "phone": None,
            "shipping_address": {
                "line1": "l",
                "line2": None,
                "city": "c",
                "postal_code": "p",
                "country": "PT",
            },
        },
        "locale": "en",
        "flag_reason": None,
        "flags": [],
        "payment_attempts": [],
        "amount_refunded": 0,
        "amount_refundable": 0,
        "partially_refunded": False,
        "refunds": [],
        "timeline": [],
    }


def waiting(states: list[str]) -> tuple[OrderguardClient, list[float]]:
    answers = iter(states)
    now, slept = [0.0], list[float]()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=detail(next(answers))))
    shop = OrderguardClient(
        "http://og.test", transport=transport, sleep=sleep, clock=lambda: now[0]
    )
    return shop, slept


def test_waiting_ends_with_the_first_known_outcome() -> None:
    shop, slept = waiting(["payment_pending", "payment_unknown", "paid"])
    settled = shop.wait_for_settlement("ord_1", timeout_s=30, first_poll_s=1, max_poll_s=5)
    assert (settled.outcome, settled.settled) == ("paid", True)
    assert slept == [1, 2]


def test_an_outcome_unknown_at_the_deadline_is_confirming_not_failed() -> None:
    shop, slept = waiting(["payment_unknown"] * 20)
    settled = shop.wait_for_settlement("ord_1", timeout_s=10, first_poll_s=1, max_poll_s=4)
    assert (settled.outcome, settled.settled) == ("confirming", False)
    assert sum(slept) <= 10 and slept == [1, 2, 4]
