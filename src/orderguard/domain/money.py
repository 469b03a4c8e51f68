"""Money as integer minor units of an ISO 4217 currency; never floats."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from orderguard.domain.errors import DomainError, UnknownCurrency

_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL = "CLF UYW"
_TWO_DECIMAL = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
    "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST "
    "XCD XCG YER ZAR ZMW ZWG"
)

#: ISO 4217 currency code -> number of digits after the decimal separator (its exponent).
#: Precious metals, testing and accounting units (XAU, XTS, XDR, ...) are not payable and absent.
EXPONENTS: dict[str, int] = {
    **{code: 0 for code in _ZERO_DECIMAL.split()},
    **{code: 2 for code in _TWO_DECIMAL.split()},
    **{code: 3 for code in _THREE_DECIMAL.split()},
    **{code: 4 for code in _FOUR_DECIMAL.split()},
}


def exponent(currency: str) -> int:
    """The ISO 4217 exponent of ``currency``; raises :class:`UnknownCurrency`."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def is_currency(code: str) -> bool:
    """Whether ``code`` is a payable ISO 4217 currency code (upper case)."""
    return code in EXPONENTS


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents, yen, fils) of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units, never a float")
        exponent(self.currency)

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        """This amount multiplied by a whole quantity."""
        return Money(self.amount * quantity, self.currency)

    def format(self) -> str:
        """Human-readable decimal form, e.g. ``39.98 EUR`` or ``1500 JPY``."""
        digits = exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, minor = divmod(abs(self.amount), 10**digits)
        if digits == 0:
            return f"{sign}{whole} {self.currency}"
        return f"{sign}{whole}.{minor:0{digits}d} {self.currency}"

    @classmethod
    def zero(cls, currency: str) -> Money:
        """No money in ``currency``."""
        return cls(0, currency)


def _power(digits: int) -> int:
    """``10 ** digits`` for ``digits >= 0``, as an int."""
    return int(10**digits)


class AmountLimit(StrEnum):
    """Which of a provider's rules an amount breaks."""

    #: The provider does not charge in this currency at all.
    UNSUPPORTED = "unsupported_currency"
    #: Below the smallest amount the provider charges in this currency.
    MINIMUM = "minimum"
    #: Above the largest amount the provider charges in this currency.
    MAXIMUM = "maximum"
    #: Not a whole multiple of the smallest step the provider can express or charge.
    GRANULARITY = "granularity"


class AmountNotExact(ValueError):
    """An amount cannot be expressed exactly in the other side's units (never rounded)."""

    def __init__(self, amount: int, currency: str, units: str) -> None:
        self.amount, self.currency, self.units = amount, currency, units
        super().__init__(f"{amount} {currency} cannot be expressed exactly in {units} units")


@dataclass(frozen=True, slots=True)
class AmountRefusal:
    """Why a provider cannot charge ``amount`` (ISO minor units) and what it could charge."""

    currency: str
    amount: int
    limit: AmountLimit
    #: The valid amounts closest to ``amount`` (ISO minor units), lowest first; none when
    #: the currency is not supported.
    nearest: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AmountRule:
    """Which amounts a provider charges in one currency, and how its units relate to ISO's.

    ``minimum``, ``maximum`` and ``step`` are in the domain's ISO 4217 minor units: an amount
    is chargeable when it lies in ``[minimum, maximum]`` and is a whole multiple of ``step``.
    The provider writes amounts with ``provider_exponent`` digits after the decimal separator,
    so an ISO amount ``a`` is ``a * 10 ** (provider_exponent - iso_exponent)`` provider units.
    Only integers are ever multiplied or divided exactly; nothing is rounded.
    """

    currency: str
    supported: bool
    iso_exponent: int
    provider_exponent: int
    minimum: int
    #: ``None``: no upper limit.
    maximum: int | None
    step: int

    @classmethod
    def identity(cls, currency: str, *, minimum: int = 1, maximum: int | None = None) -> AmountRule:
        """A provider counting in ISO minor units, charging any amount from ``minimum``."""
        digits = exponent(currency)
        return cls(currency, True, digits, digits, max(1, minimum), maximum, 1)

    @classmethod
    def unsupported(cls, currency: str) -> AmountRule:
        """A currency the provider does not charge in (its units are taken to be ISO's)."""
        digits = exponent(currency)
        return cls(currency, False, digits, digits, 1, None, 1)

    @classmethod
    def from_provider_terms(
        cls,
        currency: str,
        *,
        provider_exponent: int,
        provider_minimum: int,
        provider_maximum: int,
        provider_step: int = 1,
    ) -> AmountRule:
        """The rule of a provider stating its limits in its own units (e.g. a published
        table of minimum and maximum charges)."""
        iso = exponent(currency)
        shift = provider_exponent - iso
        if shift >= 0:
            factor = _power(shift)
            step = provider_step // math.gcd(provider_step, factor)
            low = -(-provider_minimum // factor)  # smallest a with a * factor >= minimum
            high = provider_maximum // factor
        else:
            factor = _power(-shift)
            step = provider_step * factor
            low = provider_minimum * factor
            high = provider_maximum * factor + factor - 1
        minimum = max(step, -(-low // step) * step)
        maximum = high // step * step
        return cls(currency, True, iso, provider_exponent, minimum, maximum, step)

    def to_provider(self, amount: int) -> int:
        """``amount`` ISO minor units in the provider's units; :class:`AmountNotExact` if it
        has digits the provider cannot write (e.g. 1000.50 MGA at a provider
        that counts MGA whole)."""
        shift = self.provider_exponent - self.iso_exponent
        if shift >= 0:
            return amount * _power(shift)
        whole, rest = divmod(amount, _power(-shift))
        if rest:
            raise AmountNotExact(amount, self.currency, "provider")
        return whole

    def from_provider(self, amount: int) -> int:
        """``amount`` provider units in ISO minor units; :class:`AmountNotExact` if it has
        digits ISO 4217 does not (e.g. 1.50 ISK)."""
        shift = self.provider_exponent - self.iso_exponent
        if shift <= 0:
            return amount * _power(-shift)
        whole, rest = divmod(amount, _power(shift))
        if rest:
            raise AmountNotExact(amount, self.currency, "ISO 4217")
        return whole

    def allows(self, amount: int) -> bool:
        """Whether ``amount`` (ISO minor units) can be charged."""
        return self.refusal(amount) is None

    def refusal(self, amount: int) -> AmountRefusal | None:
        """Why ``amount`` (ISO minor units) cannot be charged, or ``None`` when it can."""
        if not self.supported:
            return AmountRefusal(self.currency, amount, AmountLimit.UNSUPPORTED, ())
        if amount < self.minimum:
            return AmountRefusal(self.currency, amount, AmountLimit.MINIMUM, (self.minimum,))
        if self.maximum is not None and amount > self.maximum:
            return AmountRefusal(self.currency, amount, AmountLimit.MAXIMUM, (self.maximum,))
        if amount % self.step:
            below = amount // self.step * self.step
            candidates = (below, below + self.step)
            nearest = tuple(a for a in candidates if self._within(a))
            return AmountRefusal(self.currency, amount, AmountLimit.GRANULARITY, nearest)
        return None

    def _within(self, amount: int) -> bool:
        return amount >= self.minimum and (self.maximum is None or amount <= self.maximum)


class AmountNotChargeable(DomainError):
    """The configured payment provider cannot charge this amount; nothing was stored."""

    def __init__(self, refusal: AmountRefusal, provider: str) -> None:
        self.refusal, self.provider = refusal, provider
        nearest = ", ".join(Money(a, refusal.currency).format() for a in refusal.nearest)
        total = Money(refusal.amount, refusal.currency).format()
        super().__init__(
            f"{provider} cannot charge {total} ({refusal.limit})"
            + (f"; nearest chargeable: {nearest}" if nearest else "")
        )
