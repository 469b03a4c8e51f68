from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderguard.domain.errors import InvalidOrder
from orderguard.domain.order import MAX_TOTAL, Order, OrderLine
from tests.factories import customer, new_order

AT = datetime(2026, 11, 24, tzinfo=UTC)


def test_the_server_computes_the_total_from_the_lines() -> None:
    order = new_order(at=AT)
    assert order.total.amount == 2 * 1999 + 850
    assert order.total.currency == "EUR"


def test_a_new_order_is_received_with_a_timeline_entry_and_an_outbox_event() -> None:
    order = new_order(at=AT)
    assert order.state == "received"
    assert [e.to_state for e in order.new_entries] == ["received"]
    assert [e.type for e in order.new_events] == ["order.received"]
    assert order.new_events[0].payload["amount_total"] == order.total.amount
    assert "email" not in str(order.new_events[0].payload)


def test_ids_are_prefixed_and_status_tokens_carry_at_least_128_bits() -> None:
    order = new_order(at=AT)
    assert order.id.startswith("ord_") and len(order.id) == 30
    assert len(order.status_token) * 6 >= 128
    assert new_order(at=AT).status_token != order.status_token


def test_every_invalid_line_is_named() -> None:
    lines = [OrderLine("A", "a", 0, 100), OrderLine("B", "b", 1, -1)]
    with pytest.raises(InvalidOrder) as caught:
        Order.place(currency="EURO", lines=lines, customer=customer(), at=AT)
    locations = {loc for loc, _ in caught.value.errors}
    assert locations == {("currency",), ("items", 0, "quantity"), ("items", 1, "unit_amount")}


def test_an_order_needs_lines_and_a_total_that_fits() -> None:
    with pytest.raises(InvalidOrder):
        Order.place(currency="EUR", lines=[], customer=customer(), at=AT)
    huge = [OrderLine("A", "a", 1_000_000, 10**12)]
    assert huge[0].amount > MAX_TOTAL
    with pytest.raises(InvalidOrder, match="total"):
        Order.place(currency="EUR", lines=huge, customer=customer(), at=AT)
