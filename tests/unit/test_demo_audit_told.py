"""The shopper's side of the demo's oracle (``shoppers_misled``): every checkout ends where
its shopper was told, and nothing went wrong that nothing explains. The expectations are
written here from what a shopper reads and does, each world built by hand."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from orderguard.demo.audit import Snapshot, StoredOrder, build_report, check
from orderguard.demo.report import render
from orderguard.demo.shoppers import Cart, Checkout, Exchange, ShopperStats
from tests.unit.test_demo_audit import SCHEDULE_KEYS, T0

LINES = (("TEE-M", "T-shirt", 2, 1999), ("MUG", "Mug", 1, 850))


def _story(
    behaviour: str, final: str, *exchanges: Exchange, shown: tuple[str, ...] = ()
) -> tuple[ShopperStats, Snapshot]:
    """One checkout ``C-1`` (answered with ``ord_1``) whose order ended ``final``."""
    checkout = Checkout(0, behaviour, "C-1", acknowledged={"ord_1"})
    checkout.cart = Cart(LINES, "EUR", "C-1", "c-1@example.com")
    checkout.exchanges = list(exchanges)
    checkout.shown = list(shown)
    order = StoredOrder("ord_1", "C-1", final, "EUR", 4848, None, T0, T0, checkout="c-1")
    return ShopperStats(checkouts=[checkout]), Snapshot({"ord_1": order}, {"ord_1"}, Counter())


def _misled(shoppers: ShopperStats, db: Snapshot) -> list[str]:
    return check(shoppers, db, {})["shoppers_misled"]


def _post(path: str, state: str | None, *statuses: int) -> Exchange:
    return Exchange("POST", path, "key-1", list(statuses), 0, "ord_1" if state else None, state)


ORDER = "/v1/orders"
AGAIN = "/v1/orders/ord_1/payments"


def _page(state: str | None) -> Exchange:
    return Exchange("GET", "/orders/ord_1", None, [200], 0, "ord_1", state)


@pytest.mark.parametrize(
    ("told", "final"),
    [
        ("paid", "payment_failed"),
        ("paid", "cancelled"),
        ("paid", "payment_unknown"),
        ("payment_failed", "paid"),
        ("cancelled", "paid"),
        ("refunded", "paid"),
    ],
)
def test_a_shopper_told_an_outcome_whose_order_ended_otherwise_was_misled(
    told: str, final: str
) -> None:
    shoppers, db = _story("closed_tab", final, _post(ORDER, told, 201), shown=(told,))
    assert _misled(shoppers, db) == [f"C-1: told {told}, order ended {final}"]


@pytest.mark.parametrize(
    ("told", "final"),
    [
        ("paid", "paid"),
        ("paid", "refunded"),  # the back office refunded it afterwards
        ("payment_failed", "payment_failed"),
        ("payment_failed", "cancelled"),
        ("payment_unknown", "paid"),  # still being found out: nothing was promised
        ("payment_unknown", "payment_failed"),
        ("payment_pending", "cancelled"),
        ("received", "paid"),
    ],
)
def test_an_order_that_ended_as_the_shopper_was_told_misleads_no_one(told: str, final: str) -> None:
    shoppers, db = _story("closed_tab", final, _post(ORDER, told, 201), shown=(told,))
    assert _misled(shoppers, db) == []


def test_only_the_last_state_shown_is_a_promise() -> None:
    """Declined, then paid again: the decline was true when shown."""
    answers = (_post(ORDER, "payment_failed", 201), _post(AGAIN, "paid", 201))
    shoppers, db = _story("declined_then_paid", "paid", *answers, shown=("payment_failed", "paid"))
    assert _misled(shoppers, db) == []


@pytest.mark.parametrize("final", ["payment_failed", "cancelled"])
def test_paying_again_with_a_card_that_works_cannot_end_declined(final: str) -> None:
    """What a broken pay-again does: the shopper is answered (even truthfully, "declined
    again"), but the card they chose was never the one charged."""
    answers = (_post(ORDER, "payment_failed", 201), _post(AGAIN, "payment_failed", 201))
    shown = ("payment_failed", "payment_failed")
    shoppers, db = _story("declined_then_paid", final, *answers, shown=shown)
    assert _misled(shoppers, db) == [
        f"C-1: paid again with a card that works and was answered, order ended {final}"
    ]


def test_a_pay_again_never_answered_promises_nothing_but_a_declined_card_is_never_paid() -> None:
    unanswered = Exchange("POST", AGAIN, "key-2", [], 12)
    sent = (_post(ORDER, "payment_failed", 201), unanswered)
    shoppers, db = _story("declined_then_paid", "payment_failed", *sent, shown=("payment_failed",))
    assert _misled(shoppers, db) == []
    never_again = _story("declined_then_paid", "paid", _post(ORDER, "payment_unknown", 201))
    assert _misled(*never_again) == ["C-1: declined and never paid again, order ended paid"]


@pytest.mark.parametrize(
    ("behaviour", "final", "why"),
    [
        ("3ds_approved", "payment_failed", "approved 3-D Secure and was shown the order back"),
        ("3ds_approved", "cancelled", "approved 3-D Secure and was shown the order back"),
        ("3ds_refused", "paid", "refused 3-D Secure"),
        ("3ds_abandoned", "paid", "walked away from 3-D Secure"),
        ("3ds_abandoned", "refunded", "walked away from 3-D Secure"),
        ("card", "payment_failed", "paid with a card that works and was answered"),
        ("double_click", "cancelled", "paid with a card that works and was answered"),
    ],
)
def test_what_the_shopper_did_rules_out_some_ends(behaviour: str, final: str, why: str) -> None:
    steps = (_post(ORDER, "action_required", 201), _page("payment_unknown"))
    shoppers, db = _story(behaviour, final, *steps, shown=("action_required", "payment_unknown"))
    assert _misled(shoppers, db) == [
        f"C-1: {why}{' at the shop' if 'back' in why else ''}, order ended {final}"
    ]


@pytest.mark.parametrize(
    ("behaviour", "final"),
    [
        ("3ds_approved", "paid"),
        ("3ds_refused", "payment_failed"),
        ("3ds_abandoned", "cancelled"),
        ("card", "paid"),
        ("double_click", "refunded"),
    ],
)
def test_what_the_shopper_did_allows_the_right_end(behaviour: str, final: str) -> None:
    steps = (_post(ORDER, "action_required", 201), _page("payment_unknown"))
    shoppers, db = _story(behaviour, final, *steps, shown=("action_required", "payment_unknown"))
    assert _misled(shoppers, db) == []


def test_an_approved_challenge_never_back_at_the_shop_promises_nothing() -> None:
    shoppers, db = _story("3ds_approved", "cancelled", _post(ORDER, "action_required", 201))
    assert _misled(shoppers, db) == []


def test_every_error_nothing_explains_is_counted_and_named() -> None:
    """What a broken 3-D Secure return does: the order ends paid, as the shopper approved,
    but their order page at the shop said it did not exist."""
    steps = (_post(ORDER, "action_required", 201),)
    shoppers, db = _story("3ds_approved", "paid", *steps, shown=("action_required",))
    shoppers.checkouts[0].errors += [
        "their order page answered 404 (/orders/ord_1)",
        "simulator error: KeyError: 'state'",
    ]
    assert _misled(shoppers, db) == [
        "C-1: their order page answered 404 (/orders/ord_1)",
        "C-1: simulator error: KeyError: 'state'",
    ]


def test_an_order_the_shopper_never_saw_is_held_to_what_they_were_told() -> None:
    """The database's orders of the checkout (through its customer), not only the ids it
    was answered with."""
    shoppers, db = _story("card", "paid", _post(ORDER, "paid", 201), shown=("paid",))
    db.orders["ord_2"] = StoredOrder(
        "ord_2", None, "payment_failed", "EUR", 4848, None, T0, T0, checkout="c-1"
    )
    assert "C-1: told paid, order ended payment_failed" in _misled(shoppers, db)


def test_the_report_names_the_shopper_invariant_and_counts_what_shoppers_were_shown() -> None:
    shoppers, db = _story("card", "payment_failed", _post(ORDER, "paid", 201), shown=("paid",))
    report = build_report(shoppers, db, {}, {}, seed=3, database="sqlite")
    figures = report.as_json()
    assert figures["invariants"]["shoppers_misled"] == 2
    assert figures["shoppers_told"] == {"paid": 1}
    assert report.ok is False
    report.schedule = dict.fromkeys(SCHEDULE_KEYS, 1)
    console = Console(record=True, width=200)
    render(report, console)
    text = " ".join(console.export_text().split())
    assert "INVARIANT BROKEN: shoppers misled or left with an unexplained error" in text
