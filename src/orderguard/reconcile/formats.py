"""How each provider's settlement report maps onto one settlement line.

A layout turns the report's columns (read as text) into SQL expressions for the line's
reference, order reference, kind, credit and debit amounts, fee, currency and time. The
engine parses amounts, currencies and times the same way for every format.

Sources, from each provider's published description of the report:

- Stripe balance transactions export and itemized reports (``balance_change_from_activity``
  and ``payout_reconciliation.itemized``: balance_transaction_id, created_utc, currency,
  gross, fee, net, reporting_category, source_id, charge_id, payment_intent_id,
  ``payment_metadata[KEY]``): https://docs.stripe.com/reports/payout-reconciliation.md,
  https://docs.stripe.com/reports/balance, https://pastebin.com/B928d03g (report columns),
  https://stripe.dev/stripe-java/com/stripe/model/BalanceTransaction.html (gross/fee/net).
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
    extra: dict[str, str] = field(default_factory=dict)


def _stripe_balance(cols: Columns) -> Projection:
    """Stripe balance transactions export (Dashboard CSV: id, Type, Source, Amount, Fee,
    Net, Currency, Created (UTC), metadata as ``KEY (metadata)``); see
    https://docs.stripe.com/reports/balance and
    https://stripe.dev/stripe-java/com/stripe/model/BalanceTransaction.html."""
    kind = cols.first("Type")
    return {
        "ref": cols.any_of("payment_intent_id", "Payment Intent ID", "Source", "source_id"),
        "order_ref": cols.any_of("order_id (metadata)", "payment_metadata[order_id]"),
        "kind": kind_case(kind, _STRIPE_TYPES),
        "credit": cols.first("Amount"),
        "debit": "NULL",
        "fee": [cols.first("Fee")],
        "currency": cols.first("Currency"),
        "at": cols.first("Created (UTC)", "Created"),
    }


_STRIPE_TYPES = {
    c.CHARGE_KIND: ("charge", "payment"),
    c.REFUND_KIND: ("refund", "payment_refund"),
    c.CHARGEBACK_KIND: ("dispute", "dispute_reversal", "adjustment"),
    c.FEE_KIND: ("stripe_fee", "application_fee", "tax_fee", "fee"),
    c.PAYOUT_KIND: ("payout",),
}


def _stripe_itemized(cols: Columns) -> Projection:
    """Stripe itemized reports (payout reconciliation, balance change from activity); see
    https://docs.stripe.com/reports/payout-reconciliation.md and the report columns in
    https://pastebin.com/B928d03g (``balance_change_from_activity.itemized.3``)."""
    return {
        "ref": cols.any_of("payment_intent_id", "charge_id", "source_id"),
        "order_ref": cols.any_of(
            "payment_metadata[order_id]", "payment_metadata[orderguard_order]"
        ),
        "kind": kind_case(cols.first("reporting_category"), _STRIPE_CATEGORIES),
        "credit": cols.first("gross"),
        "debit": "NULL",
        "fee": [cols.first("fee")],
        "currency": cols.first("currency"),
        "at": cols.first("created_utc", "created"),
    }


_STRIPE_CATEGORIES = {
    c.CHARGE_KIND: ("charge",),
    c.REFUND_KIND: ("refund", "refund_failure"),
    c.CHARGEBACK_KIND: ("dispute", "dispute_reversal"),
    c.FEE_KIND: ("fee", "network_cost"),
    c.PAYOUT_KIND: ("payout", "payout_reversal"),
}


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


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "stripe",
        "stripe",
        frozenset({"balance_transaction_id", "reporting_category", "gross", "fee", "currency"}),
        _stripe_itemized,
    ),
    Layout(
        "stripe",
        "stripe",
        frozenset({"id", "type", "amount", "fee", "net", "currency", "created (utc)"}),
        _stripe_balance,
    ),
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
    ),
    Layout(
        "alipay",
        "alipay",
        frozenset({"账务流水号", "业务流水号", "业务类型"}),
        _alipay_account,
        prepared=True,
        utf8_only=False,
    ),
    Layout(
        "wechatpay",
        "wechatpay",
        frozenset({"交易时间", "微信订单号", "商户订单号", "交易状态"}),
        _wechat,
        prepared=True,
        utf8_only=False,
    ),
)
#: Names accepted by ``--format`` besides ``auto`` and ``csv``.
NAMES = ("stripe", "adyen", "paypal", "alipay", "wechatpay")


def recognise(header: Sequence[str], *, wanted: str = "auto") -> Layout | None:
    """The layout whose signature ``header`` carries (of format ``wanted`` unless auto)."""
    names = {h.strip().lower() for h in header}
    for layout in LAYOUTS:
        if wanted not in ("auto", layout.name):
            continue
        if layout.signature <= names:
            return layout
    return None
