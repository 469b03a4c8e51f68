from __future__ import annotations

import pytest

from orderguard.domain.errors import UnknownCurrency
from orderguard.domain.money import Money, exponent, is_currency


@pytest.mark.parametrize(("code", "digits"), [("JPY", 0), ("EUR", 2), ("KWD", 3), ("CLF", 4)])
def test_currencies_have_their_iso_4217_exponent(code: str, digits: int) -> None:
    assert exponent(code) == digits


def test_unknown_and_non_payable_codes_are_refused() -> None:
    for code in ("EURO", "eur", "XAU", "XTS", ""):
        assert not is_currency(code)
    with pytest.raises(UnknownCurrency):
        Money(100, "XXX")


def test_money_is_integer_minor_units_never_floats() -> None:
    with pytest.raises(TypeError):
        Money(19.99, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "EUR")


def test_money_formats_with_the_currency_exponent() -> None:
    assert Money(3998, "EUR").format() == "39.98 EUR"
    assert Money(1500, "JPY").format() == "1500 JPY"
    assert Money(2849, "KWD").format() == "2.849 KWD"
    assert Money(-5, "EUR").format() == "-0.05 EUR"


def test_adding_different_currencies_is_refused() -> None:
    assert Money(1, "EUR") + Money(2, "EUR") == Money(3, "EUR")
    with pytest.raises(ValueError, match="cannot add"):
        Money(1, "EUR") + Money(2, "USD")
