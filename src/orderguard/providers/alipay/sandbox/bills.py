# ruff: noqa: RUF001 -- Alipay's bills use full-width punctuation on purpose
"""The sandbox's daily trade bills: ``alipay.data.dataservice.bill.downloadurl.query`` and
the download it answers.

A day's bill is made from the book (:mod:`.bill_file`): every trade paid that day (China
time) is a ``交易`` line, every refund made that day a ``退款`` line, with a 0.6 % service
fee. It is served as
Alipay serves it, a ``csv.zip`` holding the detail file (``<pid>0156_<yyyymmdd>_业务明细.csv``,
GBK, CRLF, ``#`` header and summary lines) and its summary (``..._业务明细(汇总).csv``), at
an address valid 30 seconds. The rules, from Alipay's description of the method
(https://opendocs.alipay.com/apis/api_15/alipay.data.dataservice.bill.downloadurl.query;
bill_type ``trade``, bill_date ``yyyy-MM-dd``) and its notes
(https://developer.aliyun.com/article/707638: T+1 only, after 10:00 the next day, the
address's parameters, GBK; https://blog.csdn.net/weixin_30729609/article/details/101444448:
today's date answers ``参数不合法``): a day not over, or before 10:00 the next day, answers
``isv.invalid-arguments``; a day without trades ``isp.bill_not_exist`` (the sandbox's
reading); a monthly bill (``yyyy-MM``) or another bill type is not served.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orderguard.providers.alipay.sandbox.bill_file import archive, lines
from orderguard.providers.alipay.sandbox.trades import BusinessError
from orderguard.providers.bills import CHINA

if TYPE_CHECKING:
    from orderguard.providers.alipay.sandbox.state import Sandbox

#: How long a download address works (Alipay: 30 seconds).
URL_TTL = timedelta(seconds=30)
#: When a day's bill can be had: 10:00 the next day, China time.
READY_AT = time(10, 0)
#: The method's name.
METHOD = "alipay.data.dataservice.bill.downloadurl.query"
#: The download route (Alipay's bill centre path).
DOWNLOAD_PATH = "/downloadBillFile.resource"


@dataclass
class Desk:
    """The bill addresses handed out, and the switched trouble of the bill routes."""

    #: token -> (day, valid until).
    tokens: dict[str, tuple[date, datetime]] = field(default_factory=dict)
    #: Hand out download addresses on this ``host:port`` instead of the sandbox's own.
    foreign_host: str | None = None
    #: Where the gateway was last called (the download addresses' host).
    base_url: str = "http://127.0.0.1"


_DESKS: WeakKeyDictionary[Sandbox, Desk] = WeakKeyDictionary()


def desk(sandbox: Sandbox) -> Desk:
    """The bill desk of ``sandbox``."""
    return _DESKS.setdefault(sandbox, Desk())


def parse_day(value: object) -> date:
    """A daily ``bill_date``; a monthly one or anything else is refused."""
    text = str(value or "")
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise BusinessError(
            "isv.invalid-arguments", "bill_date 须为 yyyy-MM-dd（沙箱只提供日账单）"
        ) from None


def check_ready(day: date, now: datetime) -> None:
    """``isv.invalid-arguments`` until 10:00 (China time) the day after ``day``."""
    ready = datetime.combine(day + timedelta(days=1), READY_AT, CHINA)
    if now < ready:
        raise BusinessError(
            "isv.invalid-arguments", "参数不合法：账单日期须早于今天，且次日 10 点后方可下载"
        )


def account_of(sandbox: Sandbox) -> str:
    """The bill's account: the seller's pid followed by ``0156``, as Alipay writes it."""
    return f"{sandbox.config.seller_id}0156"


def download_url_query(sandbox: Sandbox, biz: Mapping[str, object]) -> dict[str, str]:
    """``alipay.data.dataservice.bill.downloadurl.query``: the address of the day's bill, on
    the host the gateway was called at (:attr:`Desk.base_url`)."""
    if biz.get("bill_type") != "trade":
        raise BusinessError("isv.invalid-arguments", "bill_type 仅支持 trade（沙箱）")
    day = parse_day(biz.get("bill_date"))
    now = sandbox.now()
    check_ready(day, now)
    if not lines(list(sandbox.book.trades.values()), day):
        raise BusinessError("isp.bill_not_exist", "账单不存在")
    token = secrets.token_urlsafe(16)
    found = desk(sandbox)
    found.tokens = {k: v for k, v in found.tokens.items() if v[1] >= now}
    found.tokens[token] = (day, now + URL_TTL)
    account = account_of(sandbox)
    query = {
        "bizType": "trade",
        "userId": account,
        "fileType": "csv.zip",
        "bizDates": f"{day:%Y%m%d}",
        "downloadFileName": f"{account}_{day:%Y%m%d}.csv.zip",
        "timestamp": str(int(now.timestamp())),
        "token": token,
    }
    host = f"http://{found.foreign_host}" if found.foreign_host else found.base_url.rstrip("/")
    return {"bill_download_url": f"{host}{DOWNLOAD_PATH}?{urlencode(query)}"}


async def download(request: Request) -> Response:
    """The bill's ``csv.zip`` for a token handed out less than 30 seconds ago."""
    sandbox: Sandbox = request.app.state.sandbox
    found = desk(sandbox).tokens.get(request.query_params.get("token", ""))
    now = sandbox.now()
    if found is None or now > found[1]:
        return Response("下载超时，请重新下载".encode("gbk"), 403, media_type="text/plain")
    day = found[0]
    account = account_of(sandbox)
    body = lines(list(sandbox.book.trades.values()), day)
    return Response(
        archive(account, day, body, now),
        media_type="application/oct-stream",
        headers={"content-disposition": f'attachment; filename="{account}_{day:%Y%m%d}.csv.zip"'},
    )


async def set_trouble(request: Request) -> Response:
    """``{"foreign_host": "evil.example:80"}``: the next addresses point elsewhere (``null``
    puts them back)."""
    sandbox: Sandbox = request.app.state.sandbox
    body = await request.json()
    desk(sandbox).foreign_host = body.get("foreign_host")
    return JSONResponse({"foreign_host": desk(sandbox).foreign_host})
