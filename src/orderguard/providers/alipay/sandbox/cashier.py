"""The cashier: what the shopper's browser opens (``alipay.trade.page.pay`` /
``alipay.trade.wap.pay``) and the simulated shopper's login and payment.

Opening the signed URL only shows the cashier; the trade is created when the shopper logs
in, as at Alipay. The pages are minimal HTML with one form per action.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from orderguard.providers.alipay import methods
from orderguard.providers.alipay.currencies import from_yuan
from orderguard.providers.alipay.sandbox.state import Sandbox
from orderguard.providers.alipay.sandbox.trades import BusinessError, Prepared
from orderguard.providers.alipay.times import BEIJING, TIME_FORMAT

#: What Alipay takes as ``out_trade_no``: letters, digits, underscores, 64 at most.
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")
#: API method -> product code it must carry.
PRODUCT_CODES = {p.api_method: p.product_code for p in methods.PRODUCTS.values()}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{body}",
        status_code=status,
    )


def refused(sub_code: str, message: str) -> HTMLResponse:
    """The cashier's error page (Alipay shows the sub_code too)."""
    return _page(
        "支付宝 - 错误",
        f"<p id=sub_code>{html.escape(sub_code)}</p><p>{html.escape(message)}</p>",
        400,
    )


def _expiry(biz: Mapping[str, object]) -> datetime | None:
    text = biz.get("time_expire")
    if not text:
        return None
    return datetime.strptime(str(text), TIME_FORMAT).replace(tzinfo=BEIJING)


def open_cashier(sandbox: Sandbox, params: Mapping[str, str]) -> Response:
    """A verified page/wap pay request: prepare the trade and show the login page."""
    method = params["method"]
    try:
        biz = json.loads(params.get("biz_content") or "{}")
        request = Prepared(
            out_trade_no=str(biz["out_trade_no"]),
            total_fen=from_yuan(biz["total_amount"]),
            subject=str(biz["subject"]),
            time_expire=_expiry(biz),
            notify_url=params.get("notify_url") or None,
            product_code=str(biz["product_code"]),
            passback_params=biz.get("passback_params") or None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        return refused("ACQ.INVALID_PARAMETER", f"biz_content: {exc!r}")
    if request.product_code != PRODUCT_CODES[method]:
        return refused("ACQ.INVALID_PARAMETER", f"product_code is not {PRODUCT_CODES[method]}")
    if OUT_TRADE_NO.fullmatch(request.out_trade_no) is None:
        return refused("ACQ.INVALID_PARAMETER", "out_trade_no: letters, digits, _ (64 at most)")
    if not 1 <= request.total_fen <= 10_000_000_000:
        return refused("ACQ.TOTAL_FEE_EXCEED", "total_amount out of [0.01, 100000000]")
    existing = sandbox.book.trades.get(request.out_trade_no)
    if existing is not None and existing.total_fen != request.total_fen:
        return refused("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
    if existing is None:
        sandbox.book.prepare(request)
    no = html.escape(request.out_trade_no)
    back = html.escape(params.get("return_url") or "")
    return _page(
        f"支付宝收银台 {request.subject}",
        f"<p>{no}: {html.escape(str(biz['total_amount']))} CNY</p>"
        f"<form method=post action='/cashier/{no}/login'><input type=hidden name=return_url "
        f"value='{back}'><button>登录 (log in)</button></form>",
    )


async def login(request: Request) -> Response:
    """The shopper logs in: the trade exists from now on; the payment page follows."""
    sandbox: Sandbox = request.app.state.sandbox
    no = request.path_params["out_trade_no"]
    try:
        sandbox.book.login(no)
    except BusinessError as exc:
        return refused(exc.sub_code, exc.sub_msg)
    back = html.escape(str((await request.form()).get("return_url") or ""))
    safe = html.escape(no)
    return _page(
        "支付宝 - 确认付款",
        f"<form method=post action='/cashier/{safe}/pay'><input type=hidden name=return_url "
        f"value='{back}'><button>付款 (pay)</button></form>",
    )


async def pay(request: Request) -> Response:
    """The shopper pays; the browser goes back to ``return_url`` (or sees a receipt)."""
    sandbox: Sandbox = request.app.state.sandbox
    no = request.path_params["out_trade_no"]
    try:
        trade = sandbox.pay(no)
    except BusinessError as exc:
        return refused(exc.sub_code, exc.sub_msg)
    back = str((await request.form()).get("return_url") or "")
    if back:
        query = urlencode({"out_trade_no": no, "trade_no": trade.trade_no})
        return RedirectResponse(f"{back}{'&' if '?' in back else '?'}{query}", status_code=303)
    return _page("支付成功", f"<p>{html.escape(no)} paid</p>")
