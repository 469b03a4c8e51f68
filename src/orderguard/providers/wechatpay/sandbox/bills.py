# ruff: noqa: RUF001 -- WeChat Pay's messages use full-width punctuation on purpose
"""The sandbox's daily trade bills: ``GET /v3/bill/tradebill`` and the download it answers.

A day's bill is made from the book: every trade paid that day (China time) is a ``SUCCESS``
line, every refund that succeeded that day a ``REFUND`` line, with a 0.6 % fee, written as
WeChat Pay writes the bill: UTF-8 CSV, each value after a backtick, the totals
(``总交易单数,...``) at the end. Following WeChat Pay's description of the API
(https://pay.weixin.qq.com/doc/v3/merchant/4012556654 "申请交易账单" and
https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_9_1.shtml: ``bill_date``
``yyyy-MM-DD``, three months kept, ``bill_type`` ALL/SUCCESS/REFUND; the answer
``hash_type`` ``SHA1``, ``hash_value``, ``download_url``) and of the download
(https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_3_9.shtml: the address valid 30
seconds, the request signed like any other, the answer not signed, the file's SHA-1 its
check; bills made from 9:00 the next day, to be fetched after 10:00): a day not over answers
``400 PARAM_ERROR``, a bill not made yet ``400 STATEMENT_CREATING``, a day without trades
``400 NO_STATEMENT_EXIST``, an expired address ``400 INVALID_REQUEST``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderguard.providers.bills import CHINA
from orderguard.providers.wechatpay.sandbox.service import Sandbox
from orderguard.providers.wechatpay.sandbox.trades import PAID, ApiError, Trade

#: How long a download address works.
URL_TTL = timedelta(seconds=30)
#: When a day's bill can be had: 10:00 the next day, China time.
READY_AT = time(10, 0)
#: How far back bills are kept.
KEPT = timedelta(days=92)
#: The fee the sandbox charges, in thousandths, and as the bill writes its rate.
FEE_PERMILLE, RATE = 6, "0.60%"
APPLY_PATH, DOWNLOAD_PATH = "/v3/bill/tradebill", "/v3/billdownload/file"
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


@dataclass
class Desk:
    """The download addresses handed out, and switched trouble."""

    #: token -> (day, bill type, valid until).
    tokens: dict[str, tuple[date, str, datetime]] = field(default_factory=dict)
    #: Answer a ``hash_value`` that is not the file's.
    bad_hash: bool = False
    #: Sign the answer wrongly.
    bad_sign: bool = False
    #: Hand out download addresses on this ``host:port`` instead of the sandbox's own.
    foreign_host: str | None = None


def desk(request: Request) -> Desk:
    """The app's bill desk (made at its first use)."""
    state = request.app.state
    if not hasattr(state, "bill_desk"):
        state.bill_desk = Desk()
    found: Desk = state.bill_desk
    return found


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


def parse_day(value: str, now: datetime) -> date:
    """The ``bill_date`` asked for, once it may be asked for (else :class:`ApiError`)."""
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ApiError(400, "PARAM_ERROR", "bill_date 格式应为 yyyy-MM-DD")
    today = now.astimezone(CHINA).date()
    if day >= today:
        raise ApiError(400, "PARAM_ERROR", "账单日期须早于今天")
    if day < today - KEPT:
        raise ApiError(400, "PARAM_ERROR", "仅支持下载三个月内的账单")
    if now < datetime.combine(day + timedelta(days=1), READY_AT, CHINA):
        raise ApiError(400, "STATEMENT_CREATING", "账单生成中，请在上午10点以后再下载")
    return day


def lines(sandbox: Sandbox, day: date, bill_type: str = "ALL") -> list[str]:
    """The bill's data lines for ``day``: payments then refunds, in time order."""
    rows: list[tuple[datetime, str]] = []
    book = sandbox.book
    if bill_type in ("ALL", "SUCCESS"):
        for trade in book.trades.values():
            if trade.state in PAID and trade.success_time:
                at = _china(trade.success_time)
                if at.date() == day:
                    rows.append((at, _line(sandbox, trade, at, None)))
    if bill_type in ("ALL", "REFUND"):
        for refund in book.refunds.values():
            if refund.get("status") == "SUCCESS" and refund.get("success_time"):
                at = _china(str(refund["success_time"]))
                if at.date() == day:
                    trade = book.trades[str(refund["out_trade_no"])]
                    rows.append((at, _line(sandbox, trade, at, refund)))
    return [text for _, text in sorted(rows, key=lambda row: row[0])]


def _line(sandbox: Sandbox, trade: Trade, at: datetime, refund: dict[str, Any] | None) -> str:
    back = int(refund["amount"]["refund"]) if refund else 0
    values = [
        f"{at:%Y-%m-%d %H:%M:%S}",
        sandbox.identity.appid,
        sandbox.identity.mchid,
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


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _refused(sandbox: Sandbox, exc: ApiError) -> Response:
    body = _json({"code": exc.code, "message": exc.message})
    return Response(body, exc.status, headers=sandbox.sign(body), media_type="application/json")


def _authenticate(sandbox: Sandbox, request: Request) -> None:
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    sandbox.authenticate(request.headers.get("authorization", ""), "GET", url, "")


async def apply(request: Request) -> Response:
    """``GET /v3/bill/tradebill?bill_date=...``: the signed address and SHA-1 of the bill."""
    sandbox: Sandbox = request.app.state.sandbox
    found = desk(request)
    params = request.query_params
    try:
        _authenticate(sandbox, request)
        bill_type = params.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND") or params.get("tar_type"):
            raise ApiError(400, "PARAM_ERROR", "bill_type 为 ALL/SUCCESS/REFUND（沙箱不压缩）")
        now = sandbox.now()
        day = parse_day(params.get("bill_date", ""), now)
        body = lines(sandbox, day, bill_type)
        if not body:
            raise ApiError(400, "NO_STATEMENT_EXIST", "账单文件不存在（当日无交易）")
    except ApiError as exc:
        return _refused(sandbox, exc)
    token = secrets.token_urlsafe(16)
    found.tokens = {k: v for k, v in found.tokens.items() if v[2] >= now}
    found.tokens[token] = (day, bill_type, now + URL_TTL)
    digest = hashlib.sha1(bill(body), usedforsecurity=False).hexdigest()
    if found.bad_hash:
        digest = hashlib.sha1(digest.encode(), usedforsecurity=False).hexdigest()
    base = f"http://{found.foreign_host}" if found.foreign_host else str(request.base_url)
    url = f"{base.rstrip('/')}{DOWNLOAD_PATH}?token={token}"
    answer = _json({"hash_type": "SHA1", "hash_value": digest, "download_url": url})
    headers = sandbox.sign(answer)
    if found.bad_sign:
        headers["Wechatpay-Signature"] = "AAAA" + headers["Wechatpay-Signature"][4:]
    return Response(answer, 200, headers=headers, media_type="application/json")


async def download(request: Request) -> Response:
    """``GET /v3/billdownload/file?token=...`` (signed): the bill, unsigned."""
    sandbox: Sandbox = request.app.state.sandbox
    try:
        _authenticate(sandbox, request)
        found = desk(request).tokens.get(request.query_params.get("token", ""))
        if found is None or sandbox.now() > found[2]:
            raise ApiError(400, "INVALID_REQUEST", "下载地址已失效，请重新申请账单")
    except ApiError as exc:
        return _refused(sandbox, exc)
    day, bill_type, _ = found
    return Response(bill(lines(sandbox, day, bill_type)), media_type="application/octet-stream")


async def set_trouble(request: Request) -> Response:
    """``POST /sandbox/admin/bills``: ``bad_hash``, ``bad_sign``, ``foreign_host``."""
    found = desk(request)
    body = await request.json()
    found.bad_hash = bool(body.get("bad_hash", found.bad_hash))
    found.bad_sign = bool(body.get("bad_sign", found.bad_sign))
    found.foreign_host = body.get("foreign_host", found.foreign_host)
    return JSONResponse(vars(found) | {"tokens": len(found.tokens)})


ROUTES = [
    Route(APPLY_PATH, apply, methods=["GET"]),
    Route(DOWNLOAD_PATH, download, methods=["GET"]),
    Route("/sandbox/admin/bills", set_trouble, methods=["POST"]),
]
