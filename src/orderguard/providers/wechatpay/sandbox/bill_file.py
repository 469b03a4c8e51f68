"""A day's trade bill as WeChat Pay writes it, made from the sandbox's book (no I/O).

UTF-8 CSV with CRLF: the column header, a line per trade paid that day (China time,
``SUCCESS``) and per refund that succeeded that day (``REFUND``), every value after a
backtick, a 0.6 % fee; then the totals' header (``总交易单数,...``) and line. The columns are
those of the trade bill the settlement reader reads (``reconcile/formats.py``;
https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_3_9.shtml for the backticks and the
two parts).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from orderguard.providers.bills import CHINA
from orderguard.providers.wechatpay.sandbox.trades import PAID, Book, Trade

#: The fee the sandbox charges, in thousandths, and as the bill writes its rate.
FEE_PERMILLE, RATE = 6, "0.60%"
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
TOTALS = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
_OPENID = "oSandboxShopper000000000000"


def fee(fen: int) -> int:
    """The fee of ``fen`` (rounded half up to a fen)."""
    return (fen * FEE_PERMILLE + 500) // 1000


def _cell(text: str) -> str:
    """``text`` as one unquoted CSV value (the bill quotes nothing)."""
    return re.sub(r"[,\r\n`]", " ", text)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _china(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(CHINA)


def lines(book: Book, day: date, bill_type: str = "ALL") -> list[str]:
    """The bill's data lines for ``day``: payments then refunds, in time order."""
    rows: list[tuple[datetime, str]] = []
    if bill_type in ("ALL", "SUCCESS"):
        for trade in book.trades.values():
            if trade.state in PAID and trade.success_time:
                at = _china(trade.success_time)
                if at.date() == day:
                    rows.append((at, _line(book, trade, at, None)))
    if bill_type in ("ALL", "REFUND"):
        for refund in book.refunds.values():
            if refund.get("status") == "SUCCESS" and refund.get("success_time"):
                at = _china(str(refund["success_time"]))
                if at.date() == day:
                    trade = book.trades[str(refund["out_trade_no"])]
                    rows.append((at, _line(book, trade, at, refund)))
    return [text for _, text in sorted(rows, key=lambda row: row[0])]


def _line(book: Book, trade: Trade, at: datetime, refund: dict[str, Any] | None) -> str:
    back = int(refund["amount"]["refund"]) if refund else 0
    values = [
        f"{at:%Y-%m-%d %H:%M:%S}",
        book.appid,
        book.mchid,
        "0",
        "",
        str(trade.transaction_id),
        trade.out_trade_no,
        _OPENID,
        trade.trade_type,
        "REFUND" if refund else "SUCCESS",
        "OTHERS",
        "CNY",
        _yuan(0 if refund else trade.total),
        "0.00",
        str(refund["refund_id"]) if refund else "0",
        str(refund["out_refund_no"]) if refund else "0",
        _yuan(back),
        "0.00",
        "ORIGINAL" if refund else "",
        "SUCCESS" if refund else "",
        _cell(str(trade.order.get("description", ""))),
        _cell(str(trade.order.get("attach", ""))),
        _yuan(-fee(back) if refund else fee(trade.total)),
        RATE,
        _yuan(trade.total),
        _yuan(back),
        "",
    ]
    return ",".join(f"`{value}" for value in values)


def bill(body: list[str]) -> bytes:
    """The whole file: header, lines, totals."""
    fields = [line.split(",") for line in body]

    def total(column: int) -> str:
        return _yuan(sum(_fen(f[column]) for f in fields))

    sums = [str(len(body)), total(12), total(16), total(17), total(22), total(24), total(25)]
    text = "\r\n".join([HEADER, *body, TOTALS, ",".join(f"`{s}" for s in sums), ""])
    return text.encode("utf-8")


def _fen(value: str) -> int:
    yuan = value.lstrip("`")
    sign = -1 if yuan.startswith("-") else 1
    whole, _, cents = yuan.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((cents + "00")[:2]))
