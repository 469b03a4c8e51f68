"""Request and response shapes of the JSON API (and so of ``/openapi.json``).

Requests are strict: unknown fields, floats for amounts, control characters and invalid
shopper data are refused with the path of every bad value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orderguard.domain.money import is_currency
from orderguard.domain.order import MAX_LINES, MAX_QUANTITY, MAX_TOTAL, MAX_UNIT_AMOUNT
from orderguard.domain.refund_record import MAX_REASON
from orderguard.services.shopper_data import (
    normalise_country,
    normalise_email,
    normalise_phone,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


_Printable = AfterValidator(_printable)
#: Non-empty printable text of at most N characters, surrounding white space removed.
Text20 = Annotated[str, Field(min_length=1, max_length=20), _Printable]
Text64 = Annotated[str, Field(min_length=1, max_length=64), _Printable]
Text100 = Annotated[str, Field(min_length=1, max_length=100), _Printable]
Text128 = Annotated[str, Field(min_length=1, max_length=128), _Printable]
Text200 = Annotated[str, Field(min_length=1, max_length=200), _Printable]


#: The languages orderguard speaks to shoppers.
Locale = Literal["en", "zh-CN"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class ItemIn(_Strict):
    """One order line; the server computes amounts and the total."""

    sku: Text64
    name: Text200
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_amount: int = Field(ge=0, le=MAX_UNIT_AMOUNT, description="Minor units, e.g. cents")


class AddressIn(_Strict):
    """Where the order ships to."""

    line1: Text200
    line2: Text200 | None = None
    city: Text100
    postal_code: Text20
    country: str | None = Field(
        default=None,
        validate_default=True,
        description="ISO 3166-1 alpha-2; the configured default country when absent",
    )

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None, info: ValidationInfo) -> str:
        default = (info.context or {}).get("default_country")
        if value is None:
            if default is None:
                raise ValueError("required: no default country is configured")
            return str(default)
        return normalise_country(value)


class CustomerIn(_Strict):
    """The shopper."""

    email: str = Field(max_length=254)
    name: Text200
    shipping_address: AddressIn
    phone: str | None = Field(
        default=None,
        max_length=40,
        description="Any format; national numbers use the shipping country",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalise_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        address = info.data.get("shipping_address")
        return normalise_phone(_printable(value), region=address.country if address else None)


class PaymentIn(_Strict):
    """How the shopper pays."""

    method: str = Field(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$", description="e.g. pm_card_visa"
    )


class PlaceOrderIn(_Strict):
    """The body of ``POST /v1/orders``."""

    merchant_reference: Text128 | None = None
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_LINES)
    customer: CustomerIn
    payment: PaymentIn | None = None
    locale: Locale | None = Field(
        default=None, description="The shopper's language; from Accept-Language when absent"
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value!r} is not a payable ISO 4217 currency code (upper case)")
        return value


class PayAgainIn(_Strict):
    """The body of ``POST /v1/orders/{id}/payments``."""

    payment: PaymentIn


class RefundIn(_Strict):
    """The optional body of ``POST /v1/orders/{id}/refunds`` (and ``/refund``); no amount
    refunds all that is left. Send an ``Idempotency-Key``: one key is one refund."""

    amount: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOTAL,
        description="Minor units to refund; all that is left when absent",
    )
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REASON,
        description="Why, in words; kept on the refund and the order's timeline",
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value)


class ItemOut(BaseModel):
    """One order line with its amount."""

    sku: str
    name: str
    quantity: int
    unit_amount: int
    amount: int


class AddressOut(BaseModel):
    """A shipping address."""

    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


class CustomerOut(BaseModel):
    """The shopper, normalised."""

    email: str
    name: str
    phone: str | None
    shipping_address: AddressOut


class AttemptOut(BaseModel):
    """One payment attempt."""

    id: str
    seq: int
    provider: str
    method: str
    state: str
    amount: int
    currency: str
    provider_ref: str | None
    decline_code: str | None
    created_at: datetime
    updated_at: datetime


class NextAction(BaseModel):
    """The shopper must open a page: 3-D Secure, a wallet's cashier (Alipay) or its mobile
    page (WeChat Pay H5)."""

    type: Literal["redirect"]
    redirect_url: str


class ScanQrCode(BaseModel):
    """The shopper must scan a QR code with the wallet's app (WeChat Pay Native): show
    ``code_url`` as a QR code, never open it."""

    type: Literal["scan_qr_code"]
    code_url: str = Field(description="The QR code's text, as the provider gave it")
    expires_at: datetime = Field(description="When the provider stops taking the payment")


#: What the shopper must do next, when anything (by ``type``).
ShopperStep = Annotated[NextAction | ScanQrCode, Field(discriminator="type")]


class TimelineOut(BaseModel):
    """One entry of the order's history."""

    at: datetime
    kind: str
    from_state: str | None
    to_state: str
    cause: str
    actor: str | None
    note: str
    request_id: str | None


class FlagOut(BaseModel):
    """One reason to review the order: open until ``cleared_at`` is set, never removed."""

    #: One of ``payment_unresolved``, ``amount_mismatch``, ``duplicate_charge``,
    #: ``charge_after_cancel``, ``charge_on_closed_attempt``, ``unexplained_charge``,
    #: ``refund_failed``, ``refund_unresolved``, ``refunded_more_than_paid``, ``shopper_report``,
    #: ``reconciliation_*`` or ``other`` (see the README's review queue).
    reason: str
    detail: str
    raised_by: str
    raised_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None


class RefundOut(BaseModel):
    """One refund: asked through orderguard, or made at the provider and reported by it."""

    id: str
    attempt_id: str
    amount: int = Field(description="Minor units")
    currency: str
    #: ``pending`` (not confirmed by the provider yet), ``succeeded`` or ``failed``.
    state: Literal["pending", "succeeded", "failed"]
    reason: str
    #: The API key id, console user or CLI actor who asked; ``provider`` for one made there.
    requester: str
    provider_ref: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class RefundTotalsOut(BaseModel):
    """How much of the order was given back and how much may still be."""

    amount_refunded: int = Field(description="Minor units the provider gave back")
    amount_refundable: int = Field(
        description="Minor units that may still be refunded: paid, less succeeded and "
        "pending refunds"
    )
    partially_refunded: bool = Field(
        description="The order is paid and some, not all, of the money was given back"
    )
    refunds: list[RefundOut]


class OrderOut(BaseModel):
    """An order."""

    id: str
    state: str
    merchant_reference: str | None
    amount_total: int
    currency: str
    items: list[ItemOut]
    customer: CustomerOut
    locale: str
    #: The first open flag's text, kept for clients written before ``flags``.
    flag_reason: str | None
    #: False for an order taken in test mode (the sandbox, a test key): no money moved.
    livemode: bool = Field(
        description="Whether the order was taken with a live provider account; false: "
        "test mode, no money moves"
    )
    #: Every review flag, open and cleared, oldest first.
    flags: list[FlagOut]
    created_at: datetime
    updated_at: datetime
    status_url: str
    next_action: ShopperStep | None
    payment_attempts: list[AttemptOut]


class OrderOutcomeOut(BaseModel):
    """What recheck, cancel and refund answer a key without ``orders:read``: the order's
    state after the action, none of the shopper's personal data."""

    id: str
    state: str
    merchant_reference: str | None
    amount_total: int
    currency: str
    livemode: bool
    created_at: datetime
    updated_at: datetime
    next_action: ShopperStep | None


class OrderReceiptOut(OrderOutcomeOut):
    """What placing an order and paying again answer a key without ``orders:read``: the
    outcome and the shopper's page to send them to."""

    status_url: str


class OrderDetailOut(OrderOut, RefundTotalsOut):
    """An order with its refunds and its timeline."""

    timeline: list[TimelineOut]


class RefundedOrderOut(OrderDetailOut):
    """What a refund request answers: the order, and the refund this request made (a
    repeated request with the same ``Idempotency-Key`` answers the same refund)."""

    refund: RefundOut


class RefundOutcomeOut(OrderOutcomeOut, RefundTotalsOut):
    """What a refund request answers a key without ``orders:read``: no personal data."""

    refund: RefundOut


class OrderPageOut(BaseModel):
    """A page of orders, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[OrderOut]
    next_cursor: str | None
