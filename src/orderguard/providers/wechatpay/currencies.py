"""WeChat Pay's amounts: CNY only, as an integer number of fen (``amount.total``).

Domestic merchants (``/v3/pay/transactions/*``) are paid in CNY; ``amount.total`` is an
integer in fen, at least 1. CNY has two decimals in ISO 4217, so fen are ISO minor units
and the conversion is the identity; every other currency is refused before anything is
sent.
"""

from __future__ import annotations

from orderguard.domain.money import EXPONENTS, AmountRule

#: The only currency of domestic WeChat Pay merchants.
CURRENCY = "CNY"
#: ``amount.total`` is an int32 of fen.
MAXIMUM_FEN = 2**31 - 1


def rule(currency: str) -> AmountRule:
    """WeChat Pay's rule for ``currency``: fen from 1 for CNY, unsupported otherwise."""
    code = currency.upper()
    if code == CURRENCY:
        return AmountRule.identity(CURRENCY, minimum=1, maximum=MAXIMUM_FEN)
    if code in EXPONENTS:
        return AmountRule.unsupported(code)
    return AmountRule(code, False, 2, 2, 1, None, 1)


def to_fen(amount: int, currency: str) -> int:
    """ISO minor units of CNY -> fen (the same number)."""
    return rule(currency).to_provider(amount)


def from_fen(amount: int, currency: str) -> int:
    """Fen -> ISO minor units of CNY (the same number)."""
    return rule(currency).from_provider(amount)
