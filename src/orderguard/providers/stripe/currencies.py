"""Stripe's currency units and charge limits, from Stripe's currency documentation.

Source: https://docs.stripe.com/currencies ("Supported currencies": presentment currencies,
zero-decimal and three-decimal currencies, special cases, minimum and maximum charge amounts).

What the page says, as this module applies it to charges (PaymentIntents):

- Stripe's ``amount`` is an integer in the currency's smallest unit: 1000 is 10.00 USD.
- **Zero-decimal** currencies are written without minor units (500 is 500 JPY): BIF, CLP,
  DJF, GNF, JPY, KMF, KRW, MGA, PYG, RWF, UGX, VND, VUV, XAF, XOF, XPF. ISO 4217 gives MGA two
  decimals, so 1,000.00 MGA is ``1000`` at Stripe and 1,000.50 MGA cannot be charged.
- **Three-decimal** currencies (BHD, JOD, KWD, OMR, TND) are written with three decimals,
  and the last digit must be 0 (5.124 KWD must become 5.120 or 5.130: ``5120``/``5130``).
- **Special cases.** ISK became effectively zero-decimal but stays two-decimal in the API
  for backwards compatibility: the amount must be a multiple of 100 (5 ISK is ``500``);
  ISO gives ISK no decimals, so every whole-krona amount converts. HUF and TWD are charged
  as two-decimal amounts (their zero-decimal rule, multiples of 100, is for payouts, not
  charges). UGX is charged as a zero-decimal currency, as ISO 4217 has it.
- **Minimums.** The page lists a minimum per currency (0.50 USD, 0.50 EUR, 0.30 GBP, 50 JPY,
  ...): :data:`MINIMUMS`. Stripe's underlying rule is about 0.50 USD converted into the
  account's settlement currency, so for a currency outside the table (or an account that
  settles in another currency) Stripe may still refuse a small amount at charge time; that
  is a failed payment, never a charge.
- **Maximum.** The amount has at most eight digits (``99999999``, 999,999.99 USD); IDR
  allows twelve.

Currencies Stripe does not list (IQD, LYD, UYI, CUP, ...) cannot be charged at all. ANG,
BGN and STD appear in Stripe's list but are no longer ISO 4217 codes here
(:mod:`orderguard.domain.money`), so they are unreachable anyway.
"""

from __future__ import annotations

from orderguard.domain.money import EXPONENTS, AmountRule

#: Presentment currencies Stripe charges cards in (upper case).
SUPPORTED = frozenset(
    (
        "USD AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BWP "
        "BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP "
        "GEL GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF "
        "KRW KWD KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR "
        "MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR "
        "SBD SCR SEK SGD SHP SLE SOS SRD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX USD UYU "
        "UZS VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW"
    ).split()
)

#: Written without minor units in Stripe's API.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())

#: Written with three decimals; the last digit must be 0.
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

#: Two-decimal in the API although effectively zero-decimal: amounts must be multiples of 100.
WHOLE_UNITS_IN_TWO_DECIMALS = frozenset({"ISK"})

#: The page's minimum charge per currency, in Stripe's units (USD 0.50 is ``50``).
MINIMUMS: dict[str, int] = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
}

#: The largest amount, in Stripe's units: eight digits, twelve for IDR.
MAXIMUM = 99_999_999
MAXIMUMS: dict[str, int] = {"IDR": 999_999_999_999}


def stripe_exponent(currency: str) -> int:
    """Digits after the decimal separator in Stripe's ``amount`` for ``currency``."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def stripe_step(currency: str) -> int:
    """The step every Stripe amount in ``currency`` must be a multiple of (Stripe's units)."""
    if currency in THREE_DECIMAL:
        return 10
    if currency in WHOLE_UNITS_IN_TWO_DECIMALS:
        return 100
    return 1


def stripe_minimum(currency: str) -> int:
    """The smallest amount Stripe charges in ``currency``, in Stripe's units."""
    return max(MINIMUMS.get(currency, 1), stripe_step(currency))


def stripe_maximum(currency: str) -> int:
    """The largest amount Stripe charges in ``currency``, in Stripe's units."""
    return MAXIMUMS.get(currency, MAXIMUM)


def _rule(currency: str) -> AmountRule:
    if currency not in SUPPORTED:
        return AmountRule.unsupported(currency)
    return AmountRule.from_provider_terms(
        currency,
        provider_exponent=stripe_exponent(currency),
        provider_minimum=stripe_minimum(currency),
        provider_maximum=stripe_maximum(currency),
        provider_step=stripe_step(currency),
    )


#: Every ISO 4217 currency's rule at Stripe, computed once.
RULES: dict[str, AmountRule] = {code: _rule(code) for code in EXPONENTS}


def rule(currency: str) -> AmountRule:
    """Stripe's rule for ``currency`` (upper or lower case); unknown codes are unsupported."""
    code = currency.upper()
    found = RULES.get(code)
    if found is not None:
        return found
    return AmountRule(code, False, 2, 2, 1, None, 1)


def to_stripe(amount: int, currency: str) -> int:
    """ISO minor units -> Stripe's units; :class:`AmountNotExact` when it cannot be exact."""
    return rule(currency).to_provider(amount)


def from_stripe(amount: int, currency: str) -> int:
    """Stripe's units -> ISO minor units; :class:`AmountNotExact` when it cannot be exact."""
    return rule(currency).from_provider(amount)
