"""The demo's oracle holds the provider's ledger against the simulator's own record first:
charges matched to checkouts by the customer each checkout sent, amounts against the cart it
sent, orders counted per checkout in the database, and a charge for no checkout of the run
never trusted. Every world here is built by hand; each test breaks one thing in it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from orderguard.demo.audit import Snapshot, StoredOrder, charge_customer, check
from orderguard.demo.shoppers import (
    Cart,
    Checkout,
    Exchange,
    ShopperStats,
    cart_total,
    checkout_email,
    order_body,
)
from tests.unit.test_demo_audit import T0

#: Checkout A's cart: two T-shirts and a mug, 48.48 EUR. Checkout B's: 9 000 JPY.
CART_A = (("TEE-M", "T-shirt", 2, 1999), ("MUG", "Mug", 1, 850))
CART_B = (("TEA", "Tea", 3, 3000),)
Book = dict[str, list[dict[str, Any]]]


def _charge(
    charge_id: str,
    order_id: str,
    *,
    email: str,
    reference: str | None,
    amount: int = 4848,
    currency: str = "eur",
    refunded: int = 0,
) -> dict[str, Any]:
    """A succeeded charge as the ledger lists it: the customer and merchant reference of
    its order travel in the copy of the order in its metadata, split in chunks."""
    text = json.dumps({"id": order_id, "ref": reference, "cust": [email, "Ana", None]})
    chunks = {f"og_snap_{i}": text[i * 25 : (i + 1) * 25] for i in range(len(text) // 25 + 1)}
    return {
        "id": charge_id,
        "status": "succeeded",
        "amount": amount,
        "amount_refunded": refunded,
        "currency": currency,
        "metadata": {"order_id": order_id, "attempt_id": "att_1", **chunks},
    }


def _stored(order_id: str, email: str, state: str = "paid", **kw: Any) -> StoredOrder:
    """An order as the snapshot reads it: its checkout is its merchant reference, else the
    name its customer email gives (both in lower case)."""
    total, currency = kw.pop("total", 4848), kw.pop("currency", "EUR")
    reference = kw.pop("reference", None)
    order = StoredOrder(order_id, reference, state, currency, total, None, T0, T0)
    order.checkout = (reference or email.split("@")[0]).lower()
    return order


def _world() -> tuple[ShopperStats, Snapshot, Book]:
    """Checkout A (merchant reference R-A) paid 48.48 EUR; checkout B (no merchant
    reference, a 3-D Secure card the shopper approved) paid 9 000 JPY. Right in every way."""
    a = Checkout(0, "card", "R-A", acknowledged={"ord_a"})
    a.cart = Cart(CART_A, "EUR", "R-A", "r-a@example.com")
    b = Checkout(1, "3ds_approved", "R-B", acknowledged={"ord_b"})
    b.cart = Cart(CART_B, "JPY", None, "r-b@example.com")
    orders = {
        "ord_a": _stored("ord_a", "r-a@example.com", reference="R-A"),
        "ord_b": _stored("ord_b", "r-b@example.com", total=9000, currency="JPY"),
    }
    book: Book = {
        "charges": [
            _charge("ch_a", "ord_a", email="r-a@example.com", reference="R-A"),
            _charge(
                "ch_b",
                "ord_b",
                email="r-b@example.com",
                reference=None,
                amount=9000,
                currency="jpy",
            ),
        ]
    }
    return ShopperStats(checkouts=[a, b]), Snapshot(orders, set(orders), Counter()), book


def _broken(shoppers: ShopperStats, db: Snapshot, book: Book) -> dict[str, list[str]]:
    return {name: ids for name, ids in check(shoppers, db, book).items() if ids}


def test_a_right_world_breaks_nothing() -> None:
    assert _broken(*_world()) == {}


def test_a_charge_of_another_amount_than_the_cart_is_caught_though_the_database_agrees() -> None:
    """The service stored (and charged) a total that is not the cart the shopper sent: the
    database and the ledger agree with each other, the simulator's record does not."""
    shoppers, db, book = _world()
    book["charges"][0]["amount"] = 4000
    db.orders["ord_a"].total = 4000
    assert _broken(shoppers, db, book) == {"paid_amount_differs": ["ch_a", "ord_a"]}


def test_a_charge_in_another_currency_than_the_cart_is_caught() -> None:
    shoppers, db, book = _world()
    book["charges"][1]["currency"] = "cny"
    db.orders["ord_b"].currency = "CNY"
    assert _broken(shoppers, db, book) == {"paid_amount_differs": ["ch_b", "ord_b"]}


@pytest.mark.parametrize(
    "order_id",
    ["ord_a", "ord_elsewhere", "ord_nowhere"],
    ids=["names-a-run-order", "names-an-order-outside-the-run", "names-no-order"],
)
def test_a_charge_for_a_customer_no_checkout_sent_is_never_trusted(order_id: str) -> None:
    """Whatever order its metadata names: an order of the run, an order of the database
    outside the run (trusted before), or none at all."""
    shoppers, db, book = _world()
    db.all_ids.add("ord_elsewhere")
    stranger = _charge("ch_x", order_id, email="someone@example.com", reference=None, refunded=4848)
    book["charges"].append(stranger)
    assert _broken(shoppers, db, book)["charges_for_unknown_checkouts"] == ["ch_x"]


@pytest.mark.parametrize(
    ("index", "reference"),
    [(0, "R-OTHER"), (0, None), (1, "R-B")],
    ids=["another-reference", "reference-missing", "reference-where-none-was-sent"],
)
def test_a_charge_whose_merchant_reference_is_not_its_checkouts_is_unknown(
    index: int, reference: str | None
) -> None:
    shoppers, db, book = _world()
    book["charges"][index]["metadata"] = _charge(
        "ch", f"ord_{'ab'[index]}", email=f"r-{'ab'[index]}@example.com", reference=reference
    )["metadata"]
    assert _broken(shoppers, db, book)["charges_for_unknown_checkouts"] == [f"ch_{'ab'[index]}"]


def test_a_charge_without_a_copy_of_its_order_belongs_to_no_checkout() -> None:
    shoppers, db, book = _world()
    book["charges"][0]["metadata"] = {"order_id": "ord_a"}  # our own bookkeeping alone
    assert _broken(shoppers, db, book)["charges_for_unknown_checkouts"] == ["ch_a"]


def test_a_charge_of_a_checkout_made_for_another_checkouts_order_is_caught() -> None:
    shoppers, db, book = _world()
    book["charges"][0]["metadata"]["order_id"] = "ord_b"
    assert _broken(shoppers, db, book)["charges_for_unknown_checkouts"] == ["ch_a"]


def test_a_second_order_the_shopper_never_saw_counts_as_two_orders() -> None:
    """Checkout B sent no merchant reference; the database holds a second order with its
    customer, which no answer ever named."""
    shoppers, db, book = _world()
    db.orders["ord_b2"] = _stored("ord_b2", "r-b@example.com", "payment_failed")
    assert _broken(shoppers, db, book) == {"checkouts_with_two_orders": ["R-B"]}


def test_one_checkout_charged_once_on_each_of_two_orders_is_charged_twice() -> None:
    shoppers, db, book = _world()
    db.orders["ord_b2"] = _stored("ord_b2", "r-b@example.com", total=9000, currency="JPY")
    second = _charge(
        "ch_b2", "ord_b2", email="r-b@example.com", reference=None, amount=9000, currency="jpy"
    )
    book["charges"].append(second)
    broken = _broken(shoppers, db, book)
    assert broken["orders_charged_twice"] == ["ord_b", "ord_b2"]
    assert broken["checkouts_with_two_orders"] == ["R-B"]


def test_a_paid_orders_stored_total_is_held_against_the_cart() -> None:
    shoppers, db, book = _world()
    db.orders["ord_a"].total = 4847
    assert _broken(shoppers, db, book) == {"paid_amount_differs": ["ord_a"]}


def test_the_charges_customer_is_read_from_its_chunks_and_nothing_else() -> None:
    charge = _charge("ch", "ord", email="R-A@Example.com", reference="R-A")
    customer = charge_customer(charge)
    assert customer is not None
    assert (customer.email, customer.reference) == ("r-a@example.com", "R-A")
    del charge["metadata"]["og_snap_1"]  # a chunk lost: the copy cannot be read
    assert charge_customer(charge) is None


# -- the simulator's own record --------------------------------------------------------------


def test_each_checkout_sends_a_customer_of_its_own_found_by_the_runs_prefix() -> None:
    emails = {checkout_email(f"DEMO-ab12cd34-{i:05d}") for i in range(500)}
    assert len(emails) == 500
    assert checkout_email("DEMO-ab12cd34-00007") == "demo-ab12cd34-00007@example.com"


def test_the_cart_is_what_the_body_sent_reckoned_by_the_simulator() -> None:
    body = order_body(4, "DEMO-x-00004", "pm_card_visa")
    cart = Cart.of(body)
    assert cart.lines == (("TEE-M", "T-shirt", 2, 1990), ("MUG", "Mug", 1, 890))
    assert (cart.amount, cart.currency) == (2 * 1990 + 890, "KWD") == cart_total(4)
    assert (cart.reference, cart.email) == ("DEMO-x-00004", "demo-x-00004@example.com")
    assert Cart.of({**body, "merchant_reference": None}).reference is None
    assert Cart.of({k: v for k, v in body.items() if k != "merchant_reference"}).reference is None


def test_a_checkouts_record_lists_its_keys_and_the_last_state_it_was_shown() -> None:
    checkout = Checkout(0, "declined_then_paid", "R-A")
    assert (checkout.keys, checkout.told) == ([], None)
    checkout.exchanges = [
        Exchange("POST", "/v1/orders", "key-1", [201], 0, "ord_a", "payment_failed"),
        Exchange("GET", "/orders/ord_a", None, [200], 0, "ord_a", "payment_failed"),
        Exchange("POST", "/v1/orders/ord_a/payments", "key-2", [], 3),
    ]
    checkout.shown = ["payment_failed", "payment_unknown"]
    assert checkout.keys == ["key-1", "key-2"]
    assert checkout.told == "payment_unknown"
    assert checkout.email == "r-a@example.com"
