"""The shopper: who pays and where the order goes.

Values arrive here already normalised (see :mod:`orderguard.services.shopper_data`);
these types only hold them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """A shipping address; ``country`` is an ISO 3166-1 alpha-2 code."""

    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """The shopper. ``email`` is normalised; ``phone`` is E.164 when present."""

    email: str
    name: str
    shipping_address: Address
    phone: str | None = None
