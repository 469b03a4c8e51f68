"""The sandbox's trades and refunds, and Alipay's rules over them. No I/O.

A cashier request only prepares a trade; the trade exists once the simulated shopper logs
in at the cashier (before: ``ACQ.TRADE_NOT_EXIST``), and only until ``time_expire`` may
it be paid. Close works on an unpaid trade only; refunds on a paid (``TRADE_SUCCESS``)
trade only, never above its amount in total (``ACQ.REASON_TRADE_REFUND_FEE_ERR``), one
refund per ``out_request_no`` (a repeat answers ``fund_change=N`` and moves nothing, even
with another amount: the sandbox's reading of Alipay's documented repeat rule); refunds of
the whole amount close the trade.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from orderguard.providers.alipay import errors
from orderguard.providers.alipay.currencies import to_yuan
from orderguard.providers.alipay.times import alipay_time


class BusinessError(Exception):
    """A 40004 answer: ``sub_code`` and ``sub_msg``."""

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{sub_code}: {sub_msg}")
        self.sub_code, self.sub_msg = sub_code, sub_msg


@dataclass
class Prepared:
    """A cashier request the shopper has not logged in to yet."""

    out_trade_no: str
    total_fen: int
    subject: str
    time_expire: datetime | None
    notify_url: str | None
    product_code: str
    #: Given back as it came in every notification (never in the query), as Alipay does.
    passback_params: str | None = None


@dataclass
class Refund:
    out_request_no: str
    amount_fen: int
    at: datetime


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    total_fen: int
    subject: str
    status: str
    created: datetime
    time_expire: datetime | None
    notify_url: str | None
    product_code: str
    passback_params: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunds: list[Refund] = field(default_factory=list)

    @property
    def refunded_fen(self) -> int:
        return sum(r.amount_fen for r in self.refunds)

    def fields(self) -> dict[str, str]:
        """The trade as ``alipay.trade.query`` and notifications show it."""
        out = {
            "trade_no": self.trade_no,
            "out_trade_no": self.out_trade_no,
            "trade_status": self.status,
            "total_amount": to_yuan(self.total_fen),
            "subject": self.subject,
            "gmt_create": alipay_time(self.created),
            "buyer_logon_id": "sha***@sandbox.test",
            "buyer_user_id": "2088000000000002",
        }
        if self.paid_at is not None:
            out["send_pay_date"] = alipay_time(self.paid_at)
            out["buyer_pay_amount"] = out["receipt_amount"] = to_yuan(self.total_fen)
        return out


class Book:
    """Every prepared request, trade and refund of one sandbox."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.prepared: dict[str, Prepared] = {}
        self.trades: dict[str, Trade] = {}
        self._numbers = itertools.count(1)

    def prepare(self, request: Prepared) -> None:
        """A cashier request (the trade is not created yet)."""
        self.prepared[request.out_trade_no] = request

    def login(self, out_trade_no: str) -> Trade:
        """The shopper logs in at the cashier: the trade exists from now on."""
        request = self.prepared.get(out_trade_no)
        if request is None:
            raise BusinessError(errors.TRADE_NOT_EXIST, "no cashier request for this trade")
        trade = self.trades.get(out_trade_no)
        if trade is not None:
            if trade.total_fen != request.total_fen:
                raise BusinessError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return trade
        now = self.clock()
        if request.time_expire is not None and now >= request.time_expire:
            raise BusinessError("ACQ.TRADE_HAS_CLOSE", "交易已关闭 (time_expire passed)")
        number = f"{now:%Y%m%d}22001{next(self._numbers):012d}"
        trade = Trade(
            out_trade_no,
            number,
            request.total_fen,
            request.subject,
            "WAIT_BUYER_PAY",
            now,
            request.time_expire,
            request.notify_url,
            request.product_code,
            request.passback_params,
        )
        self.trades[out_trade_no] = trade
        return trade

    def find(self, out_trade_no: str) -> Trade:
        """The trade, closed first if it expired unpaid; ``ACQ.TRADE_NOT_EXIST`` if none."""
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise BusinessError(errors.TRADE_NOT_EXIST, "交易不存在")
        now = self.clock()
        expired = trade.time_expire is not None and now >= trade.time_expire
        if trade.status == "WAIT_BUYER_PAY" and expired:
            trade.status, trade.closed_at = "TRADE_CLOSED", now
        return trade

    def pay(self, out_trade_no: str) -> Trade:
        """The shopper pays (only a trade waiting for payment)."""
        trade = self.find(out_trade_no)
        if trade.status != "WAIT_BUYER_PAY":
            raise BusinessError(errors.TRADE_STATUS_ERROR, f"the trade is {trade.status}")
        trade.status, trade.paid_at = "TRADE_SUCCESS", self.clock()
        return trade

    def close(self, out_trade_no: str) -> Trade:
        """``alipay.trade.close`` or the shopper's abandoning after time_expire."""
        trade = self.find(out_trade_no)
        if trade.status != "WAIT_BUYER_PAY":
            raise BusinessError(errors.TRADE_STATUS_ERROR, f"the trade is {trade.status}")
        trade.status, trade.closed_at = "TRADE_CLOSED", self.clock()
        return trade

    def finish(self, out_trade_no: str) -> Trade:
        """The refund period ends: ``TRADE_SUCCESS`` -> ``TRADE_FINISHED``."""
        trade = self.find(out_trade_no)
        if trade.status != "TRADE_SUCCESS":
            raise BusinessError(errors.TRADE_STATUS_ERROR, f"the trade is {trade.status}")
        trade.status = "TRADE_FINISHED"
        return trade

    def refund(self, out_trade_no: str, amount_fen: int, out_request_no: str) -> tuple[Trade, bool]:
        """``alipay.trade.refund``: the trade and whether money moved (a repeat: no)."""
        trade = self.find(out_trade_no)
        for done in trade.refunds:
            if done.out_request_no == out_request_no:
                # a repeat answers the refund made, whatever it asks: no money moves
                return trade, False
        if trade.status == "TRADE_FINISHED":
            raise BusinessError(errors.TRADE_HAS_FINISHED, "交易已完结")
        if trade.status != "TRADE_SUCCESS":
            raise BusinessError(errors.TRADE_STATUS_ERROR, f"the trade is {trade.status}")
        if amount_fen <= 0:
            raise BusinessError("ACQ.INVALID_PARAMETER", "refund_amount must be positive")
        if trade.refunded_fen + amount_fen > trade.total_fen:
            raise BusinessError(errors.REFUND_FEE_ERROR, "退款金额无效")
        now = self.clock()
        trade.refunds.append(Refund(out_request_no, amount_fen, now))
        if trade.refunded_fen == trade.total_fen:
            trade.status, trade.closed_at = "TRADE_CLOSED", now
        return trade, True

    def refund_of(self, out_trade_no: str, out_request_no: str) -> tuple[Trade, Refund | None]:
        """``alipay.trade.fastpay.refund.query``: the trade and the refund, if any."""
        trade = self.find(out_trade_no)
        found = [r for r in trade.refunds if r.out_request_no == out_request_no]
        return trade, (found[0] if found else None)

    def ledger(self) -> dict[str, list[dict[str, object]]]:
        """Every cashier request, trade and refund, in fen (the tests' oracle)."""
        return {
            "prepared": [
                {"out_trade_no": p.out_trade_no, "total_fen": p.total_fen}
                for p in self.prepared.values()
            ],
            "trades": [
                {
                    "out_trade_no": t.out_trade_no,
                    "trade_no": t.trade_no,
                    "status": self.find(t.out_trade_no).status,
                    "total_fen": t.total_fen,
                    "refunded_fen": t.refunded_fen,
                    "product_code": t.product_code,
                    "subject": t.subject,
                    "passback_params": t.passback_params,
                }
                for t in list(self.trades.values())
            ],
            "refunds": [
                {
                    "out_trade_no": t.out_trade_no,
                    "out_request_no": r.out_request_no,
                    "fen": r.amount_fen,
                }
                for t in self.trades.values()
                for r in t.refunds
            ],
        }
