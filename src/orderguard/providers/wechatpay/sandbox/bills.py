# ruff: noqa: RUF001 -- WeChat Pay's messages use full-width punctuation on purpose
"""The sandbox's daily trade bills: ``GET /v3/bill/tradebill`` and the download it answers.

A day's bill is made from the book (:mod:`.bill_file`): every trade paid that day (China
time) is a ``SUCCESS`` line, every refund that succeeded that day a ``REFUND`` line, with a
0.6 % fee, written as WeChat Pay writes the bill: UTF-8 CSV, each value after a backtick,
the totals (``总交易单数,...``) at the end. Following WeChat Pay's description of the API
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
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderguard.providers.bills import CHINA
from orderguard.providers.wechatpay.sandbox.bill_file import bill, lines
from orderguard.providers.wechatpay.sandbox.service import Sandbox
from orderguard.providers.wechatpay.sandbox.trades import ApiError

#: How long a download address works.
URL_TTL = timedelta(seconds=30)
#: When a day's bill can be had: 10:00 the next day, China time.
READY_AT = time(10, 0)
#: How far back bills are kept.
KEPT = timedelta(days=92)
APPLY_PATH, DOWNLOAD_PATH = "/v3/bill/tradebill", "/v3/billdownload/file"


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
        body = lines(sandbox.book, day, bill_type)
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
    return Response(
        bill(lines(sandbox.book, day, bill_type)), media_type="application/octet-stream"
    )


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
