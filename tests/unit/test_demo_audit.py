"""The demo's oracle can fail: each invariant is broken by the data that should break it,
and holds on data that is right."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from orderguard.demo.audit import (
    INVARIANTS,
    Snapshot,
    StoredOrder,
    build_report,
    check,
    resolution_times,
)
from orderguard.demo.report import render
from orderguard.demo.shoppers import Checkout, ShopperStats

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _order(order_id: str, state: str = "paid", *, flag: str | None = None) -> StoredOrder:
    return StoredOrder(order_id, f"ref-{order_id}", state, "EUR", 4848, flag, T0, T0)


def _charge(
    charge_id: str, order_id: str, *, amount: int = 4848, refunded: int = 0
) -> dict[str, Any]:
    return {
        "id": charge_id,
        "status": "succeeded",
        "amount": amount,
        "amount_refunded": refunded,
        "currency": "eur",
        "metadata": {"order_id": order_id},
    }


def _world() -> tuple[ShopperStats, Snapshot, dict[str, list[dict[str, Any]]]]:
    """Two acknowledged orders, one paid with one matching charge, one declined."""
    shoppers = ShopperStats(
        checkouts=[
            Checkout(0, "card", "ref-a", acknowledged={"ord_a"}),
            Checkout(1, "declined_then_paid", "ref-b", acknowledged={"ord_b"}),
        ]
    )
    orders = {"ord_a": _order("ord_a"), "ord_b": _order("ord_b", "payment_failed")}
    failed = {**_charge("ch_b", "ord_b"), "status": "failed"}
    book = {"charges": [_charge("ch_a", "ord_a"), failed]}
    return shoppers, Snapshot(orders, set(orders), Counter()), book


def test_a_right_run_breaks_nothing() -> None:
    broken = check(*_world())
    assert broken == {name: [] for name in INVARIANTS}


def _broken(shoppers: ShopperStats, db: Snapshot, book: dict[str, Any]) -> dict[str, list[str]]:
    return {name: ids for name, ids in check(shoppers, db, book).items() if ids}


def test_an_acknowledged_order_missing_from_the_database_is_lost() -> None:
    shoppers, db, book = _world()
    del db.orders["ord_b"]
    assert _broken(shoppers, db, book) == {"acknowledged_orders_lost": ["ord_b"]}


def test_one_checkout_answered_with_two_orders() -> None:
    shoppers, db, book = _world()
    shoppers.checkouts[1].acknowledged.add("ord_c")
    db.orders["ord_c"] = _order("ord_c", "payment_failed")
    assert _broken(shoppers, db, book) == {"checkouts_with_two_orders": ["ref-b"]}


@pytest.mark.parametrize("refunded", [0, 4848], ids=["kept", "refunded-later"])
def test_a_second_charge_is_a_double_charge_even_when_refunded_later(refunded: int) -> None:
    shoppers, db, book = _world()
    book["charges"].append(_charge("ch_a2", "ord_a", refunded=refunded))
    broken = _broken(shoppers, db, book)
    assert broken["orders_charged_twice"] == ["ord_a"]


def test_money_held_for_an_unknown_or_unpaid_order() -> None:
    shoppers, db, book = _world()
    book["charges"] += [_charge("ch_orphan", "ord_nowhere"), _charge("ch_b2", "ord_b")]
    assert _broken(shoppers, db, book) == {"charges_without_an_order": ["ch_orphan", "ch_b2"]}


def test_a_refunded_charge_of_a_cancelled_order_is_no_orphan() -> None:
    shoppers, db, book = _world()
    db.orders["ord_b"].state = "cancelled"
    book["charges"].append(_charge("ch_b2", "ord_b", refunded=4848))
    assert _broken(shoppers, db, book) == {}


@pytest.mark.parametrize("state", ["payment_unknown", "payment_pending", "action_required"])
def test_an_open_order_without_a_flag_is_stuck(state: str) -> None:
    shoppers, db, book = _world()
    db.orders["ord_b"].state = state
    assert _broken(shoppers, db, book) == {"orders_stuck_unflagged": ["ord_b"]}
    db.orders["ord_b"].flag = "stuck: payment outcome still unresolved"
    assert _broken(shoppers, db, book) == {}


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 4000},
        {"currency": "usd"},
        {"status": "failed"},
        {"amount_refunded": 4848},
    ],
    ids=["amount", "currency", "no-charge", "refunded"],
)
def test_a_paid_order_whose_charge_differs_from_its_total(change: dict[str, Any]) -> None:
    shoppers, db, book = _world()
    book["charges"][0].update(change)
    assert _broken(shoppers, db, book)["paid_amount_differs"] == ["ord_a"]


def test_resolution_times_are_measured_from_creation() -> None:
    _, db, _ = _world()
    db.orders["ord_a"].resolved_at = T0 + timedelta(seconds=2)
    db.orders["ord_b"].resolved_at = T0 + timedelta(seconds=10)
    assert resolution_times(db) == {"p50": 2.0, "p99": 10.0, "max": 10.0}


def test_the_report_counts_orders_ever_flagged_apart_from_flags_still_open() -> None:
    shoppers, db, book = _world()
    db.orders["ord_a"].flags_ever = ["payment_unresolved"]  # cleared itself once paid
    db.orders["ord_b"].flags_ever = ["payment_unresolved", "shopper_report"]
    db.orders["ord_b"].flags_open = ["shopper_report"]

    report = build_report(shoppers, db, book, {}, seed=42, database="sqlite")

    assert (report.orders_ever_flagged, report.flags_still_open) == (2, 1)
    assert report.flagged_ever == {"payment_unresolved": 2, "shopper_report": 1}
    figures = report.as_json()
    assert (figures["orders_ever_flagged"], figures["flags_still_open"]) == (2, 1)
    assert figures["flagged"] == {"shopper_report": 1}
    report.schedule = dict.fromkeys(SCHEDULE_KEYS, 1)
    console = Console(record=True, width=200)
    render(report, console)
    assert "2 orders ever flagged, 1 flags still open" in console.export_text()


#: What the report's schedule line names (filled in by the demo's run).
SCHEDULE_KEYS = (
    "recheck_scale",
    "janitor_schedule_full_s",
    "janitor_schedule_demo_s",
    "client_timeout_s",
    "payment_time_budget_s",
    "sandbox_hold_s",
    "action_expiry_s",
)
