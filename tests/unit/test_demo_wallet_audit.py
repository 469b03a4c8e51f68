"""The demo's oracle at a wallet: the Alipay and WeChat Pay sandboxes' ledgers read as paid
trades and refunds made (nothing of orderguard's), each trade's checkout found through the
order id the wallet holds and the order ids the shopper was told, and the invariants broken
by what a wallet makes possible: a paid trade on a cancelled order, a trade for less than
the cart, a shopper who paid at the wallet but whose order did not end paid. Every ledger
here is written by hand in the sandbox's own shape."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from orderguard.demo.audit import Snapshot, StoredOrder, check
from orderguard.demo.shoppers import Cart, Checkout, ShopperStats
from orderguard.demo.wallet_audit import as_charges, by_order
from orderguard.demo.wallets import WalletPay, WalletRecord, wallet_misled
from tests.unit.test_demo_audit import T0

#: One T-shirt and a mug: 28.49 CNY, in fen.
CART = (("TEE-M", "T-shirt", 1, 1999), ("MUG", "Mug", 1, 850))
TOTAL = 2849


def _alipay_trade(
    no: str, order_id: str, status: str, *, fen: int = TOTAL, refunded: int = 0
) -> dict[str, Any]:
    """A trade as the sandbox's ``/ledger`` lists it (its subject names the order)."""
    return {
        "out_trade_no": no,
        "trade_no": f"2026120322001{no}",
        "status": status,
        "total_fen": fen,
        "refunded_fen": refunded,
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "subject": f"Order {order_id}",
    }


def _wechat_trade(no: str, order_id: str, state: str, *, fen: int = TOTAL) -> dict[str, Any]:
    return {
        "out_trade_no": no,
        "trade_state": state,
        "attach": json.dumps({"order_id": order_id}, separators=(",", ":")),
        "amount": {"total": fen, "currency": "CNY"},
        "abandoned": False,
        "refunded": 0,
    }


def _wechat_refund(no: str, trade: str, fen: int, status: str) -> dict[str, Any]:
    return {"out_refund_no": no, "out_trade_no": trade, "status": status, "amount": {"refund": fen}}


def test_alipay_paid_trades_are_charges_and_unpaid_ones_are_not() -> None:
    ledger = {
        "trades": [
            _alipay_trade("T1", "ord_1", "TRADE_SUCCESS", refunded=849),
            _alipay_trade("T2", "ord_2", "TRADE_CLOSED", refunded=TOTAL),  # refunded in full
            _alipay_trade("T3", "ord_3", "TRADE_CLOSED"),  # closed unpaid
            _alipay_trade("T4", "ord_4", "WAIT_BUYER_PAY"),
            _alipay_trade("T5", "ord_5", "TRADE_FINISHED"),
        ],
        "refunds": [
            {"out_trade_no": "T1", "out_request_no": "r1", "fen": 849},
            {"out_trade_no": "T2", "out_request_no": "r2", "fen": TOTAL},
        ],
    }
    book = as_charges("alipay", ledger)
    charges = {c["id"]: c for c in book["charges"]}
    assert sorted(charges) == ["T1", "T2", "T5"]
    assert charges["T1"]["metadata"]["order_id"] == "ord_1"
    assert (charges["T1"]["amount"], charges["T1"]["amount_refunded"]) == (TOTAL, 849)
    assert charges["T2"]["amount_refunded"] == TOTAL
    assert [(r["charge"], r["amount"]) for r in book["refunds"]] == [("T1", 849), ("T2", TOTAL)]


def test_wechatpay_paid_trades_are_charges_and_only_refunds_made_count() -> None:
    ledger = {
        "trades": [
            _wechat_trade("W1", "ord_1", "SUCCESS"),
            _wechat_trade("W2", "ord_2", "REFUND"),
            _wechat_trade("W3", "ord_3", "NOTPAY"),
            _wechat_trade("W4", "ord_4", "CLOSED"),
        ],
        "refunds": [
            _wechat_refund("R1", "W2", 1000, "SUCCESS"),
            _wechat_refund("R2", "W2", 500, "PROCESSING"),  # not made yet
        ],
    }
    book = as_charges("wechatpay", ledger)
    charges = {c["id"]: c for c in book["charges"]}
    assert sorted(charges) == ["W1", "W2"]
    assert charges["W2"]["metadata"]["order_id"] == "ord_2"
    assert charges["W2"]["amount_refunded"] == 1000
    assert [(r["id"], r["amount"]) for r in book["refunds"]] == [("R1", 1000)]


def _world(state: str = "paid") -> tuple[ShopperStats, Snapshot]:
    """One Alipay checkout told order ``ord_1``, stored ``state``."""
    checkout = Checkout(0, "scan_and_pay", "R-A", acknowledged={"ord_1"})
    checkout.cart = Cart(CART, "CNY", "R-A", "r-a@example.com")
    order = StoredOrder("ord_1", "R-A", state, "CNY", TOTAL, None, T0, T0)
    order.checkout = "r-a"
    snapshot = Snapshot({"ord_1": order}, {"ord_1"}, sweep_findings=Counter())
    return ShopperStats([checkout]), snapshot


def _broken(shoppers: ShopperStats, db: Snapshot, ledger: dict[str, Any]) -> dict[str, list[str]]:
    book = as_charges("alipay", ledger)
    return {k: v for k, v in check(shoppers, db, book, owner=by_order(shoppers)).items() if v}


def test_a_paid_trade_for_a_paid_order_breaks_nothing() -> None:
    shoppers, db = _world()
    ledger = {"trades": [_alipay_trade("T1", "ord_1", "TRADE_SUCCESS")], "refunds": []}
    assert _broken(shoppers, db, ledger) == {}


def test_a_paid_trade_on_a_cancelled_order_is_a_charge_without_an_order() -> None:
    shoppers, db = _world("cancelled")
    ledger = {"trades": [_alipay_trade("T1", "ord_1", "TRADE_SUCCESS")], "refunds": []}
    assert _broken(shoppers, db, ledger) == {"charges_without_an_order": ["T1"]}


def test_a_trade_paid_for_less_than_the_cart_is_named() -> None:
    shoppers, db = _world()
    short = {"trades": [_alipay_trade("T1", "ord_1", "TRADE_SUCCESS", fen=2560)], "refunds": []}
    assert _broken(shoppers, db, short)["paid_amount_differs"] == ["T1", "ord_1"]


def test_two_paid_trades_for_one_checkout_are_a_double_charge() -> None:
    shoppers, db = _world()
    ledger = {
        "trades": [
            _alipay_trade("T1", "ord_1", "TRADE_SUCCESS"),
            _alipay_trade("T2", "ord_1", "TRADE_SUCCESS"),
        ],
        "refunds": [],
    }
    assert _broken(shoppers, db, ledger)["orders_charged_twice"] == ["ord_1"]


def test_a_trade_for_an_order_no_shopper_was_told_of_is_unknown() -> None:
    shoppers, db = _world()
    ledger = {
        "trades": [
            _alipay_trade("T1", "ord_1", "TRADE_SUCCESS"),
            _alipay_trade("T9", "ord_9", "TRADE_SUCCESS"),
        ],
        "refunds": [],
    }
    assert "T9" in _broken(shoppers, db, ledger)["charges_for_unknown_checkouts"]


@pytest.mark.parametrize(
    ("pays", "finals", "why"),
    [
        ([WalletPay("T1", 0, True)], ["paid"], []),
        ([WalletPay("T1", 0, True)], ["cancelled"], ["paid at the wallet, order ended cancelled"]),
        ([WalletPay("T1", 0, False, "ACQ.TRADE_STATUS_ERROR")], ["cancelled"], []),
        ([], ["paid"], ["never paid at the wallet, order ended paid"]),
        (
            [WalletPay("T1", 0, True), WalletPay("T1", 1, True)],
            ["paid"],
            ["the wallet took one payment twice"],
        ),
        (
            [WalletPay("T1", 0, True), WalletPay("T1", 1, False, "ACQ.TRADE_STATUS_ERROR")],
            ["paid"],
            [],
        ),
    ],
)
def test_a_wallet_shopper_is_misled_when_the_order_ends_against_what_the_wallet_did(
    pays: list[WalletPay], finals: list[str], why: list[str]
) -> None:
    checkout = Checkout(0, "two_devices", "R-A")
    found = wallet_misled(checkout, WalletRecord("alipay_page", pays), finals)
    assert found == [f"R-A: {w}" for w in why]


def test_paying_in_a_tab_left_open_after_the_order_was_cancelled_is_named() -> None:
    checkout = Checkout(0, "late_return", "R-A")
    found = wallet_misled(
        checkout, WalletRecord("wechatpay_native", [WalletPay("W1", 0, True)]), ["cancelled"]
    )
    assert "R-A: paid in a tab left open after the order was cancelled" in found
