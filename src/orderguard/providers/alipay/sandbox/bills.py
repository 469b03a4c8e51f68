# ruff: noqa: RUF001 -- Alipay's bills use full-width punctuation on purpose
"""The sandbox's daily trade bills: ``alipay.data.dataservice.bill.downloadurl.query`` and
the download it answers.

A day's bill is made from the book: every trade paid that day (China time) is a ``交易``
line, every refund made that day a ``退款`` line, with a 0.6 % service fee. It is served as
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

import io
import re
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orderguard.providers.alipay.currencies import to_yuan
from orderguard.providers.alipay.sandbox.trades import BusinessError, Trade
from orderguard.providers.bills import CHINA

if TYPE_CHECKING:
    from orderguard.providers.alipay.sandbox.state import Sandbox

#: How long a download address works (Alipay: 30 seconds).
URL_TTL = timedelta(seconds=30)
#: When a day's bill can be had: 10:00 the next day, China time.
READY_AT = time(10, 0)
#: The service fee the sandbox charges, in thousandths.
FEE_PERMILLE = 6
#: The method's name.
METHOD = "alipay.data.dataservice.bill.downloadurl.query"
#: The download route (Alipay's bill centre path).
DOWNLOAD_PATH = "/downloadBillFile.resource"
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
_RULE = "-" * 41


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


def fee(fen: int) -> int:
    """The service fee of ``fen`` (rounded half up to a fen)."""
    return (fen * FEE_PERMILLE + 500) // 1000


def _china(moment: datetime) -> datetime:
    return moment.astimezone(CHINA)


def _stamp(moment: datetime) -> str:
    return f"{_china(moment):%Y-%m-%d %H:%M:%S}"


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


def lines(trades: list[Trade], day: date) -> list[str]:
    """The detail lines of ``day``: payments then refunds, in time order."""
    rows: list[tuple[datetime, str]] = []
    for trade in trades:
        if trade.paid_at is not None and _china(trade.paid_at).date() == day:
            rows.append((trade.paid_at, _line(trade, trade.paid_at, "交易", trade.total_fen, "")))
        for refund in trade.refunds:
            if _china(refund.at).date() == day:
                line = _line(trade, refund.at, "退款", -refund.amount_fen, refund.out_request_no)
                rows.append((refund.at, line))
    return [text for _, text in sorted(rows, key=lambda row: row[0])]


def _line(trade: Trade, at: datetime, kind: str, fen: int, request_no: str) -> str:
    charged = fee(abs(fen)) * (-1 if fen > 0 else 1)
    net = fen + charged if fen > 0 else fen
    fields = [
        trade.trade_no,
        trade.out_trade_no,
        kind,
        _cell(trade.subject),
        _stamp(trade.created),
        _stamp(at),
        "",
        "",
        "",
        "",
        "sha***@sandbox.test",
        _yuan(fen),
        _yuan(net),
        *["0.00"] * 5,
        "",
        "0.00",
        "0.00",
        request_no,
        _yuan(charged),
        "0.00",
        "",
    ]
    return ",".join(fields)


def _cell(text: str) -> str:
    """``text`` as one unquoted CSV value (Alipay's bill quotes nothing)."""
    return re.sub(r"[,\r\n]", " ", text)


def _yuan(fen: int) -> str:
    return ("-" if fen < 0 else "") + to_yuan(abs(fen))


def detail(account: str, day: date, body: list[str], made: datetime) -> str:
    """The ``业务明细`` file's text."""
    trades = [line for line in body if ",交易," in line]
    refunds = [line for line in body if ",退款," in line]

    def net(found: list[str]) -> str:
        return _yuan(sum(_fen(line.split(",")[12]) for line in found))

    start, end = day, day + timedelta(days=1)
    return "\r\n".join(
        [
            "#支付宝业务明细查询",
            f"#账号：[{account}]",
            f"#起始日期：[{start:%Y年%m月%d日} 00:00:00]   终止日期：[{end:%Y年%m月%d日} 00:00:00]",
            f"#{_RULE}业务明细列表{_RULE}",
            HEADER,
            *body,
            f"#{_RULE}业务明细列表结束{_RULE[:-4]}",
            f"#交易合计：{len(trades)}笔，商家实收：{net(trades)}元，商家优惠：0.00元",
            f"#退款合计：{len(refunds)}笔，商家实收：{net(refunds)}元，商家优惠：0.00元",
            f"#导出时间：[{_china(made):%Y年%m月%d日 %H:%M:%S}]",
            "",
        ]
    )


def _fen(yuan: str) -> int:
    sign = -1 if yuan.startswith("-") else 1
    whole, _, cents = yuan.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((cents + "00")[:2]))


def summary(account: str, day: date, body: list[str]) -> str:
    """The ``业务明细(汇总)`` file's text (one line for the whole shop)."""
    trades = sum(1 for line in body if ",交易," in line)
    refunds = sum(1 for line in body if ",退款," in line)
    total = _yuan(sum(_fen(line.split(",")[11]) for line in body))
    net = _yuan(sum(_fen(line.split(",")[12]) for line in body))
    return "\r\n".join(
        [
            "#支付宝业务汇总查询",
            f"#账号：[{account}]",
            f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]",
            "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）",
            f"合计,,{trades},{refunds},{total},{net}",
            "",
        ]
    )


def archive(account: str, day: date, body: list[str], made: datetime) -> bytes:
    """The ``csv.zip``: the detail and summary files, GBK, named in GBK."""
    stem = f"{account}_{day:%Y%m%d}"
    stamp = _china(made).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, text in (
            (f"{stem}_业务明细.csv", detail(account, day, body, made)),
            (f"{stem}_业务明细(汇总).csv", summary(account, day, body)),
        ):
            member = GbkName(name, date_time=stamp)
            member.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(member, text.encode("gbk"))
    return buffer.getvalue()


class GbkName(zipfile.ZipInfo):
    """A member named in GBK, without the UTF-8 flag, as Alipay names its archives' files
    (a reader that does not know decodes the name as code page 437)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


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
