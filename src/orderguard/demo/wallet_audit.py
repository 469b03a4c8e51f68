"""A wallet sandbox's ledger in the demo's oracle's terms, and its checkout of each trade.

The Alipay and WeChat Pay sandboxes' ``/ledger`` list every trade (paid or not) and refund
they hold, in fen. The invariants of :mod:`.audit` are written over charges and refunds;
here each *paid* trade becomes a succeeded charge (its ``out_trade_no`` as id, its amount,
``cny``, what the ledger says was given back of it) and each refund the wallet made a
succeeded refund of that charge. The order a trade was made for is what the wallet itself
holds: Alipay's trade ``subject`` (``Order <id>``), WeChat Pay's ``attach`` (``{"order_id":
...}``); nothing is read from orderguard's side.

A trade's checkout (:func:`by_order`) is the one whose shopper was told that order id, in
the simulator's own record (every order id in an answer it got), so a trade for an order
no shopper of the run was told of is ``charges_for_unknown_checkouts``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from orderguard.demo.audit import Owner
from orderguard.demo.shoppers import Checkout, ShopperStats

#: Alipay trade statuses of a trade the shopper paid (a trade refunded in full is
#: ``TRADE_CLOSED`` with ``refunded_fen``: paid too).
ALIPAY_PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
#: WeChat Pay trade states of a trade the shopper paid.
WECHATPAY_PAID = frozenset({"SUCCESS", "REFUND"})

Book = dict[str, list[dict[str, Any]]]


def as_charges(provider: str, ledger: dict[str, Any]) -> Book:
    """``provider``'s sandbox ledger as ``{"charges": [...], "refunds": [...]}`` (paid
    trades and the refunds made; amounts in fen, which are CNY's minor units)."""
    if provider == "alipay":
        return _alipay(ledger)
    if provider == "wechatpay":
        return _wechatpay(ledger)
    raise ValueError(f"no wallet ledger for {provider!r}")


def _charge(trade_no: str, order_id: str | None, amount: int, refunded: int) -> dict[str, Any]:
    return {
        "id": trade_no,
        "status": "succeeded",
        "amount": amount,
        "currency": "cny",
        "amount_refunded": refunded,
        "metadata": {"order_id": order_id or ""},
    }


def _refund(refund_id: str, trade_no: str, amount: int) -> dict[str, Any]:
    return {
        "id": refund_id,
        "charge": trade_no,
        "amount": amount,
        "currency": "cny",
        "status": "succeeded",
    }


def _alipay(ledger: dict[str, Any]) -> Book:
    charges = [
        _charge(
            str(t["out_trade_no"]),
            _after(str(t.get("subject") or ""), "Order "),
            int(t["total_fen"]),
            int(t.get("refunded_fen") or 0),
        )
        for t in ledger.get("trades", [])
        if t.get("status") in ALIPAY_PAID or int(t.get("refunded_fen") or 0) > 0
    ]
    refunds = [
        _refund(f"{r['out_trade_no']}/{r['out_request_no']}", str(r["out_trade_no"]), int(r["fen"]))
        for r in ledger.get("refunds", [])
    ]
    return {"charges": charges, "refunds": refunds}


def _wechatpay(ledger: dict[str, Any]) -> Book:
    made = [r for r in ledger.get("refunds", []) if r.get("status") == "SUCCESS"]
    refunded: defaultdict[str, int] = defaultdict(int)
    for r in made:
        refunded[str(r["out_trade_no"])] += int(r["amount"]["refund"])
    charges = [
        _charge(
            str(t["out_trade_no"]),
            _attached(t.get("attach")),
            int(t["amount"]["total"]),
            refunded[str(t["out_trade_no"])],
        )
        for t in ledger.get("trades", [])
        if t.get("trade_state") in WECHATPAY_PAID
    ]
    refunds = [
        _refund(str(r["out_refund_no"]), str(r["out_trade_no"]), int(r["amount"]["refund"]))
        for r in made
    ]
    return {"charges": charges, "refunds": refunds}


def _after(text: str, prefix: str) -> str | None:
    return text[len(prefix) :] if text.startswith(prefix) else None


def _attached(value: object) -> str | None:
    try:
        found = json.loads(str(value or ""))
    except ValueError:
        return None
    order = found.get("order_id") if isinstance(found, dict) else None
    return None if order is None else str(order)


def told_order_ids(checkout: Checkout) -> set[str]:
    """Every order id the checkout's shopper was told (201s and every answer's order)."""
    return set(checkout.acknowledged) | {e.order_id for e in checkout.exchanges if e.order_id}


def by_order(shoppers: ShopperStats) -> Owner:
    """A trade's checkout: the one told the order id the wallet holds for it."""
    told: dict[str, Checkout] = {}
    for checkout in shoppers.checkouts:
        for order_id in told_order_ids(checkout):
            told.setdefault(order_id, checkout)

    def owner(charge: dict[str, Any]) -> Checkout | None:
        return told.get(str((charge.get("metadata") or {}).get("order_id") or ""))

    return owner
