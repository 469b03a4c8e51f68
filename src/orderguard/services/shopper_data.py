"""Normalise and validate what a shopper typed: email, phone, country.

Pure functions (no DNS, no network) that raise :class:`InvalidShopperData` with a message
a merchant can show; used by the API's request validation and by the data audit.
"""

from __future__ import annotations

import email_validator
import phonenumbers

from orderguard.domain.countries import NotACountry, country_code


class InvalidShopperData(ValueError):
    """A shopper's value is not valid."""


def normalise_email(raw: str) -> str:
    """The normalised address (domain lower-cased, Unicode NFC); syntax only, no DNS."""
    try:
        result = email_validator.validate_email(raw, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidShopperData(str(exc)) from None
    return str(result.normalized)


def normalise_phone(raw: str, *, region: str | None) -> str:
    """The number in E.164 (``+351912345678``); national numbers use ``region``."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidShopperData(f"not a phone number: {exc._msg}") from None
    if not phonenumbers.is_valid_number(number):
        where = f" for region {region}" if region else ""
        raise InvalidShopperData(f"not a valid phone number{where}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalise_country(raw: str) -> str:
    """An upper-case ISO 3166-1 alpha-2 code."""
    try:
        return country_code(raw)
    except NotACountry as exc:
        raise InvalidShopperData(str(exc)) from None
