"""Alipay's amounts: ``total_amount`` is a decimal string of yuan, two decimals at most.

Source: the Open Platform's ``alipay.trade.page.pay`` / ``alipay.trade.wap.pay`` request
parameters: ``total_amount`` is in yuan, "精确到小数点后两位", in ``[0.01, 100000000]``.
The domestic acquiring products charge CNY only; cross-border acquiring (``trans_currency``,
``settle_currency``) is a separate contract not built here, so every other currency is
unsupported. ISO 4217 also writes CNY with two decimals: one fen is one minor unit, and the
conversion is exact both ways or refused.
"""

from __future__ import annotations

import re

from orderguard.domain.money import EXPONENTS, AmountNotExact, AmountRule

#: The only currency the Open Platform's domestic trade APIs charge in.
CURRENCY = "CNY"
#: Smallest and largest ``total_amount`` in fen (0.01 and 100,000,000.00 yuan).
MINIMUM_FEN = 1
MAXIMUM_FEN = 10_000_000_000

#: A yuan amount as Alipay writes it: digits, then at most two decimals.
_YUAN = re.compile(r"(\d{1,12})(?:\.(\d{1,2}))?")


def rule(currency: str) -> AmountRule:
    """Alipay's rule for ``currency``: CNY from 0.01 to 100,000,000.00; anything else no."""
    code = currency.upper()
    if code != CURRENCY:
        digits = EXPONENTS.get(code, 2)  # not ISO 4217 at all: unsupported either way
        return AmountRule(code, False, digits, digits, 1, None, 1)
    return AmountRule.from_provider_terms(
        CURRENCY, provider_exponent=2, provider_minimum=MINIMUM_FEN, provider_maximum=MAXIMUM_FEN
    )


def to_yuan(fen: int) -> str:
    """Fen as Alipay's ``total_amount``: ``2599`` -> ``"25.99"``, always two decimals."""
    if fen < 0:
        raise AmountNotExact(fen, CURRENCY, "Alipay's (a negative amount)")
    yuan, cents = divmod(fen, 100)
    return f"{yuan}.{cents:02d}"


def from_yuan(text: object) -> int:
    """Alipay's yuan string as fen; :class:`ValueError` unless it is digits with at most
    two decimals (``"88.8"`` is 8880 fen; ``"1.005"``, ``"-1"``, ``"1e3"`` are refused)."""
    match = _YUAN.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a yuan amount with at most two decimals")
    whole, decimals = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(decimals)
