"""The sandbox's ``gateway.do`` API methods: biz_content in, response fields out (or a
:class:`BusinessError`). The cashier methods (page and wap pay) are in :mod:`.cashier`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orderguard.providers.alipay import errors
from orderguard.providers.alipay.currencies import from_yuan, to_yuan
from orderguard.providers.alipay.mapping import alipay_time
from orderguard.providers.alipay.sandbox.state import Sandbox
from orderguard.providers.alipay.sandbox.trades import BusinessError

Fields = dict[str, str]
Biz = Mapping[str, object]


def _out_trade_no(biz: Biz) -> str:
    value = biz.get("out_trade_no")
    if not value:
        raise BusinessError("ACQ.INVALID_PARAMETER", "out_trade_no is required")
    return str(value)


def query(sandbox: Sandbox, biz: Biz) -> Fields:
    """The trade; or, under the profile's faults, ``ACQ.SYSTEM_ERROR``, or
    ``ACQ.TRADE_NOT_EXIST`` while the query lags a payment already notified."""
    no = _out_trade_no(biz)
    if sandbox.injector.query_system_error(no):
        raise BusinessError(errors.SYSTEM_ERROR, "系统异常")
    if sandbox.injector.lagging(no):
        raise BusinessError(errors.TRADE_NOT_EXIST, "交易不存在")
    return sandbox.book.find(no).fields()


def close(sandbox: Sandbox, biz: Biz) -> Fields:
    """Close an unpaid trade (unless a payment races the close: :meth:`.Sandbox.race_close`)."""
    no = _out_trade_no(biz)
    sandbox.race_close(no)
    trade = sandbox.book.close(no)
    sandbox.notify(trade)
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}


def refund(sandbox: Sandbox, biz: Biz) -> Fields:
    request_no = str(biz.get("out_request_no") or "")
    if not request_no:
        # Alipay takes a missing out_request_no as a full refund's; the adapter always sends one
        raise BusinessError("ACQ.INVALID_PARAMETER", "out_request_no is required here")
    try:
        amount = from_yuan(biz.get("refund_amount"))
    except ValueError as exc:
        raise BusinessError("ACQ.INVALID_PARAMETER", str(exc)) from None
    trade, moved = sandbox.book.refund(_out_trade_no(biz), amount, request_no)
    if moved:
        sandbox.notify(trade, refund_request_no=request_no)
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": "sha***@sandbox.test",
        "fund_change": "Y" if moved else "N",
        "refund_fee": to_yuan(trade.refunded_fen),
        "gmt_refund_pay": alipay_time(sandbox.now()),
    }


def refund_query(sandbox: Sandbox, biz: Biz) -> Fields:
    """One refund of a trade, as Alipay answers it: the refund with ``refund_status``
    ``REFUND_SUCCESS``, or, for a refund it never got, the trade's number alone (code
    ``10000`` all the same); under the profile's faults, ``ACQ.SYSTEM_ERROR``."""
    no = _out_trade_no(biz)
    if sandbox.injector.query_system_error(no):
        raise BusinessError(errors.SYSTEM_ERROR, "系统异常")
    request_no = str(biz.get("out_request_no") or "")
    trade, found = sandbox.book.refund_of(no, request_no)
    if found is None:
        return {"out_trade_no": trade.out_trade_no}
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "out_request_no": request_no,
        "total_amount": to_yuan(trade.total_fen),
        "refund_amount": to_yuan(found.amount_fen),
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": alipay_time(found.at),
    }


#: The API methods that change something (the others only read).
WRITES = frozenset({"alipay.trade.close", "alipay.trade.refund"})
#: The API methods the sandbox answers, by name.
METHODS: dict[str, Callable[[Sandbox, Biz], Fields]] = {
    "alipay.trade.query": query,
    "alipay.trade.close": close,
    "alipay.trade.refund": refund,
    "alipay.trade.fastpay.refund.query": refund_query,
}
