"""What reports say to people, in English and Simplified Chinese."""

from __future__ import annotations

_TEXT: dict[str, dict[str, str]] = {
    "matched": {"en": "matched", "zh-CN": "已匹配"},
    "amount_mismatch": {"en": "amount mismatch", "zh-CN": "金额不符"},
    "currency_mismatch": {"en": "currency mismatch", "zh-CN": "币种不符"},
    "missing_in_orders": {
        "en": "missing in orders (orphan charge)",
        "zh-CN": "订单缺失\uff08孤立扣款\uff09",
    },
    "missing_at_provider": {"en": "missing at the provider", "zh-CN": "渠道未确认"},
    "duplicate": {"en": "duplicate", "zh-CN": "重复"},
    "refund": {"en": "refunds", "zh-CN": "退款"},
    "chargeback": {"en": "chargebacks and disputes", "zh-CN": "拒付与争议"},
    "fee": {"en": "fees", "zh-CN": "手续费"},
    "other": {"en": "payouts and other lines", "zh-CN": "结算及其他"},
    "title": {"en": "Settlement reconciliation", "zh-CN": "结算对账"},
    "category": {"en": "category", "zh-CN": "类别"},
    "currency": {"en": "currency", "zh-CN": "币种"},
    "lines": {"en": "lines", "zh-CN": "行数"},
    "gross": {"en": "gross", "zh-CN": "总额"},
    "fee_total": {"en": "fee", "zh-CN": "手续费"},
    "net": {"en": "net", "zh-CN": "净额"},
    "errors": {"en": "lines not reconciled", "zh-CN": "未能对账的行"},
    "exceptions": {"en": "exceptions", "zh-CN": "异常"},
    "period": {"en": "period", "zh-CN": "期间"},
    "files": {"en": "files", "zh-CN": "文件"},
}
#: Locales the reports speak.
LOCALES = ("en", "zh-CN")


def text(key: str, locale: str = "en") -> str:
    """``key`` in ``locale`` (English when either is unknown)."""
    entry = _TEXT.get(key)
    if entry is None:
        return key
    return entry.get(locale, entry["en"])
