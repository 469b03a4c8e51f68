from __future__ import annotations

import pytest

from orderguard.services.shopper_data import (
    InvalidShopperData,
    normalise_country,
    normalise_email,
    normalise_phone,
)


def test_emails_are_normalised_without_dns() -> None:
    assert normalise_email("Ana@Example.COM") == "Ana@example.com"
    assert normalise_email("user@xn--bcher-kva.example") == "user@bücher.example"


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "ana@@example.com", "ana@example..com", ""])
def test_invalid_emails_are_refused(bad: str) -> None:
    with pytest.raises(InvalidShopperData):
        normalise_email(bad)


def test_phones_become_e164_with_the_shipping_country_as_region() -> None:
    assert normalise_phone("912 345 678", region="PT") == "+351912345678"
    assert normalise_phone("090-1234-5678", region="JP") == "+819012345678"
    assert normalise_phone("+44 20 7946 0958", region="PT") == "+442079460958"


@pytest.mark.parametrize(
    ("raw", "region"), [("12", "PT"), ("call me", "PT"), ("912 345 678", None)]
)
def test_invalid_phones_are_refused(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidShopperData):
        normalise_phone(raw, region=region)


def test_countries_are_iso_3166_alpha_2() -> None:
    assert normalise_country(" pt ") == "PT"
    for bad in ("PRT", "XX", "UK", ""):
        with pytest.raises(InvalidShopperData):
            normalise_country(bad)
