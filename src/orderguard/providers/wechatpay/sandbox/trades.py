"""The sandbox's trades and refunds, and WeChat Pay's rules over them. No HTTP here.

An order (``/native`` or ``/h5``) makes a *prepay*: the trade does not exist for the query
(``404 ORDER_NOT_EXIST``) until the simulated shopper scans the QR code or opens the H5
page (``NOTPAY``; :attr:`Book.visible_before_scan` shows it ``NOTPAY`` at once, as WeChat
Pay does for an order it accepted), then pays (``SUCCESS``), fails at the bank
(``PAYERROR``) or abandons (stays ``NOTPAY``). A close makes any unpaid trade ``CLOSED`` (a
prepay too: its code is then dead); a paid one answers ``ORDERPAID``. Refunds need a paid
trade, the trade's total, and stay within what is left; the same ``out_refund_no`` is the
same refund.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from orderguard.providers.wechatpay.mapping import rfc3339

Json = dict[str, Any]

#: The order fields that must match when an ``out_trade_no`` is sent again (``time_expire``
#: may differ: a repeat computes it anew).
SAME_ORDER = ("appid", "mchid", "description", "attach", "notify_url", "amount")
UNPAID = frozenset({"PREPAY", "NOTPAY", "USERPAYING", "PAYERROR"})
PAID = frozenset({"SUCCESS", "REFUND"})


class ApiError(Exception):
    """An error answer: HTTP status, WeChat Pay ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Trade:
    """One order, from prepay to its final state."""

    order: Json
    trade_type: str
    token: str
    state: str = "PREPAY"
    transaction_id: str | None = None
    success_time: str | None = None
    refunded: int = 0
    abandoned: bool = False

    @property
    def out_trade_no(self) -> str:
        return str(self.order["out_trade_no"])

    @property
    def code_url(self) -> str | None:
        """A Native order's ``code_url``: what the shop shows the shopper as a QR code."""
        return f"weixin://wxpay/bizpayurl?pr={self.token}" if self.trade_type == "NATIVE" else None

    @property
    def total(self) -> int:
        return int(self.order["amount"]["total"])

    def view(self) -> Json:
        """The trade as the query answers it (a prepay shown is ``NOTPAY``)."""
        state = "NOTPAY" if self.state == "PREPAY" else self.state
        found: Json = {
            "appid": self.order["appid"],
            "mchid": self.order["mchid"],
            "out_trade_no": self.out_trade_no,
            "trade_type": self.trade_type,
            "trade_state": state,
            "trade_state_desc": STATE_TEXT[state],
            "attach": self.order.get("attach", ""),
            "amount": {"total": self.total, "currency": "CNY"},
        }
        if self.state in PAID:
            found.update(
                transaction_id=self.transaction_id,
                bank_type="OTHERS",
                success_time=self.success_time,
                payer={"openid": "oSandboxShopper000000000000"},
            )
            found["amount"].update(payer_total=self.total, payer_currency="CNY")
        return found


def lagging_view(trade: Trade) -> Json:
    """The trade as a query that has not seen its payment yet shows it: ``NOTPAY``."""
    return replace(trade, state="NOTPAY").view()


STATE_TEXT = {
    "PREPAY": "",
    "NOTPAY": "未支付",
    "USERPAYING": "用户支付中",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "已关闭",
    "REVOKED": "已撤销",
    "PAYERROR": "支付失败",
}


@dataclass
class Book:
    """Every trade and refund, by ``out_trade_no`` / ``out_refund_no``."""

    mchid: str
    appid: str
    clock: Callable[[], float]
    trades: dict[str, Trade] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    #: Whether the query shows an order before the shopper scans or opens it (``NOTPAY``),
    #: as WeChat Pay itself does for an order it accepted; by default it does not, so that
    #: orderguard's "not yet created" path is exercised.
    visible_before_scan: bool = False
    #: Whether a close loses the race against a payment already under way: it is answered
    #: 204 as usual, yet the trade stays payable and the shopper's payment lands after it
    #: (why WeChat Pay has the shop query an order after closing it). Tests of the sweep.
    payment_beats_close: bool = False

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def place(self, order: Json, trade_type: str) -> Trade:
        """A Native or H5 order; the same one again answers the same prepay."""
        _check_order(order, mchid=self.mchid, appid=self.appid)
        known = self.trades.get(str(order["out_trade_no"]))
        if known is None:
            trade = Trade(order, trade_type, secrets.token_urlsafe(12))
            self.trades[trade.out_trade_no] = trade
            return trade
        if known.state in PAID:
            raise ApiError(403, "ORDERPAID", "该订单已支付")
        if known.state == "CLOSED":
            raise ApiError(400, "ORDER_CLOSED", "该订单已关闭")
        same = all(known.order.get(k) == order.get(k) for k in SAME_ORDER)
        if not same or known.trade_type != trade_type:
            raise ApiError(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        return known

    def query(self, out_trade_no: str, mchid: str) -> Json:
        if mchid != self.mchid:
            raise ApiError(400, "PARAM_ERROR", "mchid 与商户号不一致")
        trade = self.trades.get(out_trade_no)
        if trade is None or (trade.state == "PREPAY" and not self.visible_before_scan):
            raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
        return trade.view()

    def close(self, out_trade_no: str, mchid: str) -> None:
        if mchid != self.mchid:
            raise ApiError(400, "PARAM_ERROR", "mchid 与商户号不一致")
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.state in PAID:
            raise ApiError(403, "ORDERPAID", "订单已支付, 不能关闭")
        if not self.payment_beats_close:
            trade.state = "CLOSED"

    def by_token(self, token: str) -> Trade:
        for trade in self.trades.values():
            if trade.token == token:
                return trade
        raise ApiError(404, "ORDER_NOT_EXIST", "no order has this code")

    def expired(self, trade: Trade) -> bool:
        stamp = trade.order.get("time_expire")
        return bool(stamp) and datetime.fromisoformat(str(stamp)) <= self.now()

    def shopper(self, trade: Trade, action: str) -> None:
        """The simulated shopper: ``scan`` / ``open``, ``pay``, ``fail`` or ``abandon``."""
        if trade.state in PAID or trade.state == "CLOSED":
            raise ApiError(409, "INVALID_STATE", f"the trade is {trade.state}")
        if self.expired(trade):
            raise ApiError(409, "EXPIRED", "the payment time has passed")
        if action in ("scan", "open"):
            trade.state = "NOTPAY" if trade.state == "PREPAY" else trade.state
        elif trade.state == "PREPAY":
            raise ApiError(409, "NOT_SCANNED", "the shopper has not scanned or opened it")
        elif action == "pay":
            trade.state = "SUCCESS"
            trade.transaction_id = f"42000{secrets.randbelow(10**23):023d}"
            trade.success_time = rfc3339(self.now())
        elif action == "fail":
            trade.state = "PAYERROR"
        elif action == "abandon":
            trade.abandoned = True
        else:
            raise ApiError(400, "PARAM_ERROR", f"unknown shopper action {action!r}")

    def refund(self, body: Json) -> Json:
        """A refund request; the same ``out_refund_no`` with the same amount is the same
        refund (answered as it stands now)."""
        trade = self.trades.get(str(body.get("out_trade_no") or ""))
        if trade is None or trade.state == "PREPAY":
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        amount = body.get("amount") or {}
        out_refund_no = str(body.get("out_refund_no") or "")
        if not out_refund_no:
            raise ApiError(400, "PARAM_ERROR", "缺少参数 out_refund_no")
        known = self.refunds.get(out_refund_no)
        if known is not None:
            if known["out_trade_no"] != trade.out_trade_no or known["amount"][
                "refund"
            ] != amount.get("refund"):
                raise ApiError(400, "INVALID_REQUEST", "退款单号已存在且参数不一致")
            return self.find_refund(out_refund_no)
        if trade.state not in PAID:
            raise ApiError(400, "INVALID_REQUEST", "订单未支付")
        refund = _fen(amount.get("refund"))
        if _fen(amount.get("total")) != trade.total or amount.get("currency", "CNY") != "CNY":
            raise ApiError(400, "INVALID_REQUEST", "订单金额或币种信息与订单不一致")
        if refund < 1 or refund > trade.total - trade.refunded:
            raise ApiError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        trade.refunded += refund
        found = {
            "refund_id": f"50300{secrets.randbelow(10**24):024d}",
            "out_refund_no": out_refund_no,
            "transaction_id": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(self.now()),
            "status": "PROCESSING",
            "funds_account": "AVAILABLE",
            "notify_url": body.get("notify_url") or trade.order["notify_url"],
            "amount": {
                "total": trade.total,
                "refund": refund,
                "payer_total": trade.total,
                "payer_refund": refund,
                "currency": "CNY",
            },
        }
        self.refunds[out_refund_no] = found
        return self.find_refund(out_refund_no)

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS") -> Json:
        """A PROCESSING refund ends (``SUCCESS``, ``CLOSED`` or ``ABNORMAL``)."""
        refund = self.refunds[out_refund_no]
        refund["status"] = status
        trade = self.trades[refund["out_trade_no"]]
        if status == "SUCCESS":
            refund["success_time"] = rfc3339(self.now())
            trade.state = "REFUND"
        else:
            trade.refunded -= int(refund["amount"]["refund"])
        return refund

    def find_refund(self, out_refund_no: str) -> Json:
        found = self.refunds.get(out_refund_no)
        if found is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return {k: v for k, v in found.items() if k != "notify_url"}


def _fen(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "PARAM_ERROR", f"金额必须为整数(分): {value!r}")
    return value


def _check_order(order: Json, *, mchid: str, appid: str) -> None:
    for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
        if not order.get(name):
            raise ApiError(400, "PARAM_ERROR", f"缺少参数 {name}")
    if order["mchid"] != mchid or order["appid"] != appid:
        raise ApiError(400, "APPID_MCHID_NOT_MATCH", "appid 和 mch_id 不匹配")
    out_trade_no = str(order["out_trade_no"])
    if not 6 <= len(out_trade_no) <= 32:
        raise ApiError(400, "PARAM_ERROR", "out_trade_no 长度应为 6 到 32")
    amount = order["amount"]
    if _fen(amount.get("total")) < 1 or amount.get("currency", "CNY") != "CNY":
        raise ApiError(400, "PARAM_ERROR", "amount.total 至少 1 分, 币种为 CNY")
