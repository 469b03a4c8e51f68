# ruff: noqa: RUF001 -- Alipay's bills use full-width punctuation on purpose
"""A day's trade bill as Alipay writes it, made from the sandbox's trades (no I/O).

The detail file ``<pid>0156_<yyyymmdd>_业务明细.csv``: ``#`` header lines, the column
header, a ``交易`` line per trade paid that day (China time) and a ``退款`` line per refund,
a 0.6 % service fee written negative (given back, positive, on a refund), ``#`` totals;
its ``(汇总)`` summary; both GBK with CRLF, zipped as ``csv.zip`` with GBK member names.
The columns are those of the merchant bills the settlement reader reads
(``reconcile/formats.py``; https://developer.aliyun.com/article/707638 for the archive).
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime, timedelta

from orderguard.providers.alipay.currencies import to_yuan
from orderguard.providers.alipay.sandbox.trades import Trade
from orderguard.providers.bills import CHINA

#: The service fee the sandbox charges, in thousandths.
FEE_PERMILLE = 6
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
_RULE = "-" * 41


def fee(fen: int) -> int:
    """The service fee of ``fen`` (rounded half up to a fen)."""
    return (fen * FEE_PERMILLE + 500) // 1000


def _china(moment: datetime) -> datetime:
    return moment.astimezone(CHINA)


def _stamp(moment: datetime) -> str:
    return f"{_china(moment):%Y-%m-%d %H:%M:%S}"


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
