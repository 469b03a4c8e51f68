"""How each settlement report format maps onto one settlement line.

A layout turns the report's columns (read as text) into SQL expressions for the line's
reference, order reference, kind, credit and debit amounts, fee, currency and time. The
engine parses amounts, currencies and times the same way for every format.

The formats of the registered payment providers are declared by their packages (as data:
:class:`DeclaredFormat`) and passed in by the composition (``cli/reconcile.py``, through
:func:`table`); :data:`OWN` are the reports of providers orderguard has no package for.

Sources, from each provider's published description of the report:

- Adyen Settlement details report (Psp Reference, Merchant Reference, Type, Gross Currency,
  Gross Debit/Credit (GC), Net Currency, Net Debit/Credit (NC), Commission (NC), Markup
  (NC), Scheme Fees (NC), Interchange (NC)):
  https://docs.adyen.com/developers/reporting/settlement-detail-report/settlement-detail-report-structure.
- PayPal Settlement Report (STL: row types RH/FH/SH/CH/SB/SF/SC/RF/FF; amounts unsigned in
  minor units, direction in the debit-or-credit column; UTF-8):
  https://developer.paypal.com/docs/reports/sftp-reports/settlement-report/,
  https://developer.paypal.com/reports/reference/t-codes.md (T-codes).
- Alipay merchant bills (业务明细 and 账务明细: ``#`` header and summary lines, GBK):
  https://docs.open.alipay.com/api_15/alipay.data.bill.accountlog.query/ (account log
  fields: 账务流水号, 业务流水号, 商户订单号, 收入金额, 支出金额, 业务类型).
- WeChat Pay trade bill (交易账单: values prefixed with a backtick, the summary
  总交易单数,... at the end): https://pay.weixin.qq.com/doc/global/v3/zh/4012354484,
  https://wohugb.gitbooks.io/wechat-pay/content/api/downloadbill.html.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orderguard.reconcile import categories as c

#: Maps a report's header (as written, stripped) to SQL text for each canonical field.
Projection = dict[str, str | list[str]]


class Columns:
    """A report's header, looked up case-insensitively, rendered as quoted SQL names."""

    def __init__(self, header: Sequence[str]) -> None:
        self._by_lower = {name.strip().lower(): name for name in header}
        #: The report's columns the projection used (the only ones read).
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name.lower() in self._by_lower

    def first(self, *names: str) -> str:
        """The first of ``names`` the report has, as a SQL expression (NULL when none)."""
        for name in names:
            if self.has(name):
                column = self._by_lower[name.lower()]
                self.used.add(column)
                # Readers leave empty fields NULL and prepared lines are stripped already.
                return f"NULLIF({quote(column)}, '')"
        return "NULL"

    def any_of(self, *names: str) -> str:
        """COALESCE over those of ``names`` the report has."""
        present = [self.first(n) for n in names if self.has(n)]
        return f"COALESCE({', '.join(present)})" if present else "NULL"


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def kind_case(expr: str, mapping: Mapping[str, Sequence[str]], *, prefix: bool = False) -> str:
    """SQL mapping the provider's type values in ``expr`` to a canonical kind (``og_kind``).

    Exact values are a simple CASE on the value as the mapping spells it, then on the value
    lowered: most lines take the first branch, and a value is lowered only when it is
    spelled otherwise. The kinds are ``og_kind`` constants, so no line casts text."""
    other = kind_literal(c.OTHER_KIND)
    if prefix:
        whens = [
            f"WHEN starts_with(lower({expr}), {literal(value.lower())}) THEN {kind_literal(kind)}"
            for kind, values in mapping.items()
            for value in values
        ]
        return f"CASE {' '.join(whens)} ELSE {other} END"
    pairs = [(value, kind) for kind, values in mapping.items() for value in values]
    exact = " ".join(f"WHEN {literal(value)} THEN {kind_literal(kind)}" for value, kind in pairs)
    lowered = " ".join(
        f"WHEN {literal(value.lower())} THEN {kind_literal(kind)}" for value, kind in pairs
    )
    return f"CASE {expr} {exact} ELSE CASE lower({expr}) {lowered} ELSE {other} END END"


def kind_literal(kind: str) -> str:
    """A kind as an ``og_kind`` constant."""
    return f"{literal(kind)}::og_kind"


@dataclass(frozen=True)
class Layout:
    """One provider report format."""

    name: str
    #: The provider these reports come from (the recovery sweep's name for it).
    provider: str
    #: Header columns (lower case) that together identify the format.
    signature: frozenset[str]
    project: Callable[[Columns], Projection]
    #: Amounts are written in minor units (PayPal) rather than with decimals.
    minor_units: bool = False
    #: Needs the line-by-line preparation (row types, ``#`` lines, backticks).
    prepared: bool = False
    #: Decimal separator when an amount alone does not tell.
    decimal: str = "."
    #: The provider documents its report as UTF-8: other bytes are errors, not GBK.
    utf8_only: bool = True
    #: Hours ahead of UTC of the provider's local time, in which it writes times without
    #: a zone (Alipay and WeChat Pay: China Standard Time, UTC+8, no daylight saving).
    local_utc_hours: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def _adyen(cols: Columns) -> Projection:
    """Adyen Settlement details report; see
    https://docs.adyen.com/developers/reporting/settlement-detail-report/settlement-detail-report-structure
    (columns and record types) and
    https://docs.adyen.com/reporting/settlement-reconciliation/transaction-level/settlement-details-report."""
    fees = [
        cols.first(n)
        for n in ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
        if cols.has(n)
    ]
    return {
        "ref": cols.first("Psp Reference"),
        "order_ref": cols.first("Merchant Reference"),
        "kind": kind_case(cols.first("Type"), _ADYEN_TYPES),
        "credit": cols.any_of("Gross Credit (GC)", "Net Credit (NC)"),
        "debit": cols.any_of("Gross Debit (GC)", "Net Debit (NC)"),
        "fee": fees,
        "currency": cols.any_of("Gross Currency", "Net Currency"),
        "at": cols.first("Creation Date"),
    }


_ADYEN_TYPES = {
    c.CHARGE_KIND: ("Settled", "SettledBulk", "SettledInInstallments"),
    c.REFUND_KIND: ("Refunded", "RefundedBulk", "RefundedInInstallments"),
    c.CHARGEBACK_KIND: ("Chargeback", "ChargebackReversed", "SecondChargeback"),
    c.FEE_KIND: ("Fee", "PaymentCost", "MiscCosts", "InvoiceDeduction"),
    c.PAYOUT_KIND: ("MerchantPayout",),
}


def _paypal(cols: Columns) -> Projection:
    """PayPal Settlement Report (STL) ``SB`` rows under the ``CH`` header; see
    https://developer.paypal.com/docs/reports/sftp-reports/settlement-report/ and
    https://developer.paypal.com/reports/reference/t-codes.md."""
    code = cols.first("Transaction Event Code")
    direction = f"upper({cols.first('Transaction Debit or Credit')})"
    amount = cols.first("Gross Transaction Amount")
    fee_direction = f"upper({cols.first('Fee Debit or Credit')})"
    fee = cols.first("Fee Amount")
    kind = kind_case(code, _PAYPAL_CODES, prefix=True)
    return {
        "ref": f"CASE WHEN {kind} = 'charge' THEN {cols.first('Transaction ID')} ELSE "
        f"{cols.any_of('PayPal Reference ID', 'Transaction ID')} END",
        "order_ref": cols.any_of("Invoice ID", "Custom Field"),
        "kind": kind,
        "credit": f"CASE WHEN {direction} = 'CR' THEN {amount} END",
        "debit": f"CASE WHEN {direction} = 'DR' THEN {amount} END",
        "fee": [f"CASE WHEN {fee_direction} = 'CR' THEN '-' || {fee} ELSE {fee} END"],
        "currency": cols.first("Gross Transaction Currency"),
        "at": cols.any_of("Transaction Initiation Date", "Transaction Completion Date"),
    }


#: T-code prefixes (event group, or the full code where the group mixes kinds).
_PAYPAL_CODES = {
    c.REFUND_KIND: ("T1107",),
    c.CHARGEBACK_KIND: ("T1106", "T1201", "T1202", "T15"),
    c.CHARGE_KIND: ("T00",),
    c.FEE_KIND: ("T01",),
    c.PAYOUT_KIND: ("T04",),
}


#: Alipay's headers put the unit (yuan) in full-width parentheses (U+FF08, U+FF09).
_YUAN, _IN, _OUT = "\uff08元\uff09", "\uff08+元\uff09", "\uff08-元\uff09"


def _alipay_trade(cols: Columns) -> Projection:
    """Alipay merchant trade bill (业务明细); see
    https://docs.open.alipay.com/api_15/alipay.data.bill.accountlog.query/ (the bills
    downloaded from the merchant portal carry the same fields, GBK, ``#`` lines)."""
    kind = kind_case(cols.first("业务类型"), _ALIPAY_TYPES)
    amount = cols.first(f"订单金额{_YUAN}", "订单金额(元)")
    fee = cols.first(f"服务费{_YUAN}", "服务费(元)")
    return {
        "ref": cols.first("支付宝交易号"),
        "order_ref": cols.first("商户订单号"),
        "kind": kind,
        "credit": amount,
        "debit": "NULL",
        # The bill writes the service fee deducted as a negative amount.
        "fee": [f"CASE WHEN starts_with({fee}, '-') THEN substr({fee}, 2) ELSE '-' || {fee} END"],
        "currency": "'CNY'",
        "at": cols.any_of("完成时间", "创建时间"),
    }


def _alipay_account(cols: Columns) -> Projection:
    """Alipay account log bill (账务明细); see
    https://docs.open.alipay.com/api_15/alipay.data.bill.accountlog.query/."""
    return {
        "ref": cols.first("业务流水号"),
        "order_ref": cols.first("商户订单号"),
        "kind": kind_case(cols.first("业务类型"), _ALIPAY_TYPES),
        "credit": cols.first(f"收入金额{_IN}", "收入金额(+元)", "收入金额"),
        "debit": f"ltrim({cols.first(f'支出金额{_OUT}', '支出金额(-元)', '支出金额')}, '-')",
        "fee": [],
        "currency": "'CNY'",
        "at": cols.first("发生时间"),
    }


_ALIPAY_TYPES = {
    c.CHARGE_KIND: ("交易", "在线支付", "交易付款"),
    c.REFUND_KIND: ("退款", "交易退款"),
    c.FEE_KIND: ("收费", "服务费", "交易服务费"),
    c.PAYOUT_KIND: ("提现",),
}


def _wechat(cols: Columns) -> Projection:
    """WeChat Pay trade bill (交易账单, bill_type ALL); see
    https://pay.weixin.qq.com/doc/global/v3/zh/4012354484 and
    https://wohugb.gitbooks.io/wechat-pay/content/api/downloadbill.html."""
    status = cols.first("交易状态")
    kind = kind_case(status, {c.CHARGE_KIND: ("SUCCESS",), c.REFUND_KIND: ("REFUND",)})
    fee = cols.first("手续费")
    return {
        "ref": cols.first("微信订单号"),
        "order_ref": cols.first("商户订单号"),
        "kind": kind,
        "credit": f"CASE WHEN {kind} = 'refund' THEN NULL ELSE "
        f"{cols.any_of('应结订单金额', '订单金额')} END",
        "debit": f"CASE WHEN {kind} = 'refund' THEN {cols.any_of('退款金额', '申请退款金额')} END",
        "fee": [fee],
        "currency": f"COALESCE({cols.any_of('货币种类', '标价币种', '结算币种')}, 'CNY')",
        "at": cols.first("交易时间"),
    }


#: China Standard Time, the zone of Alipay's and WeChat Pay's bills: UTC+8 all year.
CHINA_UTC_HOURS = 8

#: A table of formats, tried in order on a report's header.
Formats = tuple[Layout, ...]

#: reconcile's own formats: reports of providers orderguard has no package for.
OWN: Formats = (
    Layout(
        "adyen",
        "adyen",
        frozenset({"psp reference", "merchant reference", "type", "gross currency"}),
        _adyen,
    ),
    Layout(
        "paypal",
        "paypal",
        frozenset({"transaction id", "transaction event code", "gross transaction amount"}),
        _paypal,
        minor_units=True,
        prepared=True,
    ),
    Layout(
        "alipay",
        "alipay",
        frozenset({"支付宝交易号", "商户订单号", "业务类型"}),
        _alipay_trade,
        prepared=True,
        utf8_only=False,
        local_utc_hours=CHINA_UTC_HOURS,
    ),
    Layout(
        "alipay",
        "alipay",
        frozenset({"账务流水号", "业务流水号", "业务类型"}),
        _alipay_account,
        prepared=True,
        utf8_only=False,
        local_utc_hours=CHINA_UTC_HOURS,
    ),
    Layout(
        "wechatpay",
        "wechatpay",
        frozenset({"交易时间", "微信订单号", "商户订单号", "交易状态"}),
        _wechat,
        prepared=True,
        utf8_only=False,
        local_utc_hours=CHINA_UTC_HOURS,
    ),
)


class DeclaredColumn(Protocol):
    """Where a declared format reads one field (``providers/settlement.py``'s ``Column``)."""

    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def coalesce(self) -> bool: ...


class DeclaredFormat(Protocol):
    """A format declared as data by a provider package (``providers/settlement.py``'s
    ``SettlementFormat``): its name, header signature and the columns of each field."""

    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def signature(self) -> frozenset[str]: ...
    @property
    def ref(self) -> DeclaredColumn: ...
    @property
    def order_ref(self) -> DeclaredColumn: ...
    @property
    def kind(self) -> DeclaredColumn: ...
    @property
    def kinds(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def credit(self) -> DeclaredColumn: ...
    @property
    def debit(self) -> DeclaredColumn | None: ...
    @property
    def fees(self) -> Sequence[DeclaredColumn]: ...
    @property
    def currency(self) -> DeclaredColumn: ...
    @property
    def at(self) -> DeclaredColumn: ...
    @property
    def minor_units(self) -> bool: ...
    @property
    def utf8_only(self) -> bool: ...


#: The kinds a declared format may map its types to.
KINDS = frozenset({c.CHARGE_KIND, c.REFUND_KIND, c.CHARGEBACK_KIND, c.FEE_KIND, c.PAYOUT_KIND})


def declared_layout(declared: DeclaredFormat) -> Layout:
    """The layout reading reports of ``declared``; :class:`ValueError` for a kind we lack."""
    unknown = set(declared.kinds) - KINDS
    if unknown:
        raise ValueError(f"format {declared.name}: unknown kinds {sorted(unknown)}")

    def project(cols: Columns) -> Projection:
        return {
            "ref": _read(cols, declared.ref),
            "order_ref": _read(cols, declared.order_ref),
            "kind": kind_case(_read(cols, declared.kind), declared.kinds),
            "credit": _read(cols, declared.credit),
            "debit": "NULL" if declared.debit is None else _read(cols, declared.debit),
            "fee": [_read(cols, fee) for fee in declared.fees],
            "currency": _read(cols, declared.currency),
            "at": _read(cols, declared.at),
        }

    return Layout(
        declared.name,
        declared.provider,
        declared.signature,
        project,
        minor_units=declared.minor_units,
        utf8_only=declared.utf8_only,
    )


def _read(cols: Columns, column: DeclaredColumn) -> str:
    """SQL for the field ``column`` declares."""
    return cols.any_of(*column.names) if column.coalesce else cols.first(*column.names)


def table(declared: Iterable[DeclaredFormat]) -> Formats:
    """Every format: the declared ones (the registered providers'), then :data:`OWN`."""
    return (*(declared_layout(d) for d in declared), *OWN)


def names(formats: Formats) -> tuple[str, ...]:
    """The names ``--format`` accepts for ``formats`` (besides ``auto`` and ``csv``)."""
    return tuple(dict.fromkeys(layout.name for layout in formats))


#: The human names of :data:`OWN`'s providers, in the order of :data:`OWN`.
OWN_TITLES = ("Adyen", "PayPal", "Alipay", "WeChat Pay")


def recognise(
    header: Sequence[str], *, wanted: str = "auto", formats: Formats = OWN
) -> Layout | None:
    """The layout of ``formats`` whose signature ``header`` carries (of format ``wanted``
    unless auto)."""
    present = {h.strip().lower() for h in header}
    for layout in formats:
        if wanted not in ("auto", layout.name):
            continue
        if layout.signature <= present:
            return layout
    return None
