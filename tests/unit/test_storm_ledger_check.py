"""The storm's ledger oracle (``tests/e2e/test_storm.py``) fires on what G3 forbids, even
when the sweep has already refunded the extra charge."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_storm import assert_ledger_matches
from tests.e2e.worker_harness import VISA

ORDER = "ord_storm_1"
#: The order's one attempt: (order id, attempt id, state, amount, provider reference).
ATTEMPTS: list[tuple[str, str, str, int, str | None]] = [
    (ORDER, "pay_1", "succeeded", 1500, "pi_first")
]


def _charge(charge_id: str, intent: str, *, refunded: int = 0) -> dict[str, Any]:
    return {
        "id": charge_id,
        "payment_intent": intent,
        "status": "succeeded",
        "amount": 1500,
        "amount_refunded": refunded,
        "currency": "eur",
        "metadata": {"order_id": ORDER},
    }


def _book(*charges: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {"charges": list(charges), "payment_intents": [], "refunds": [], "events": []}


def test_one_charge_for_a_paid_order_passes() -> None:
    assert_ledger_matches(
        _book(_charge("ch_1", "pi_first")), {ORDER: "paid"}, {ORDER: VISA}, ATTEMPTS
    )


def test_a_second_charge_the_sweep_refunded_still_counts_as_a_double_charge() -> None:
    book = _book(_charge("ch_1", "pi_first"), _charge("ch_2", "pi_second", refunded=1500))
    with pytest.raises(AssertionError, match=r"charged more than once.*ch_2"):
        assert_ledger_matches(book, {ORDER: "paid"}, {ORDER: VISA}, ATTEMPTS)


def test_a_second_charge_still_held_is_a_double_charge() -> None:
    book = _book(_charge("ch_1", "pi_first"), _charge("ch_2", "pi_second"))
    with pytest.raises(AssertionError, match=r"charged more than once.*ch_2"):
        assert_ledger_matches(book, {ORDER: "paid"}, {ORDER: VISA}, ATTEMPTS)
