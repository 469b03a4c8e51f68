"""What the client sends and gets back: typed copies of the public API's documents.

Written by hand from the public contract (``/openapi.json``), not imported from the
server's own schemas: a shop back-end gets plain models that import nothing of the
server. Answers are read leniently (fields added by a newer server are ignored), requests
are sent as typed here and validated by the server, which alone knows its rules (a
currency's granularity, a country's phone numbers): its 422 comes back as
:class:`~orderguard.client.errors.InvalidRequestError` with every field path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The order states the API answers today (a newer server may add one: ``state`` is text).
PAID, REFUNDED, PAYMENT_FAILED, CANCELLED = "paid", "refunded", "payment_failed", "cancelled"
ACTION_REQUIRED = "action_required"


class _Answer(BaseModel):
    """A document the server sent: unknown fields ignored, values never changed."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    """A document the client sends: only the fields named here."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests ----------------------------------------------------------------------------


class Item(_Request):
    """One order line; the server computes its amount and the order's total."""

    sku: str
    name: str
    quantity: int
    #: Minor units (cents).
    unit_amount: int


class Address(_Request):
    """Where the order ships to; ``country`` defaults to the server's default country."""

    line1: str
    city: str
    postal_code: str
    country: str | None = None
    line2: str | None = None


class Customer(_Request):
    """The shopper."""

    email: str
    name: str
    shipping_address: Address
    phone: str | None = None


class NewOrder(_Request):
    """The body of ``POST /v1/orders``; ``payment_method`` (e.g. ``pm_card_visa``) charges
    at once, without it the order waits for a payment."""

    currency: str
    items: list[Item]
    customer: Customer
    merchant_reference: str | None = None
    payment_method: str | None = None
    locale: Literal["en", "zh-CN"] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON document the API takes (absent fields left out)."""
        document = self.model_dump(exclude_none=True, exclude={"payment_method"})
        if self.payment_method is not None:
            document["payment"] = {"method": self.payment_method}
        return document


# --- answers -----------------------------------------------------------------------------


class RedirectAction(_Answer):
    """Send the shopper to ``redirect_url`` (3-D Secure, Alipay's cashier, WeChat H5)."""

    type: Literal["redirect"]
    redirect_url: str


class QrCodeAction(_Answer):
    """Show ``code_url`` as a QR code for the shopper to scan (WeChat Pay Native)."""

    type: Literal["scan_qr_code"]
    code_url: str
    expires_at: datetime


#: What the shopper must do next, by ``type``.
NextAction = Annotated[RedirectAction | QrCodeAction, Field(discriminator="type")]


class LineItem(_Answer):
    """One order line with its amount."""

    sku: str
    name: str
    quantity: int
    unit_amount: int
    amount: int


class ShippingAddress(_Answer):
    """The shipping address, normalised by the server."""

    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


class Shopper(_Answer):
    """The shopper, normalised by the server."""

    email: str
    name: str
    phone: str | None
    shipping_address: ShippingAddress


class PaymentAttempt(_Answer):
    """One payment attempt at a provider."""

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


class Flag(_Answer):
    """One reason to review the order (open until ``cleared_at``)."""

    reason: str
    detail: str
    raised_by: str
    raised_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None


class Refund(_Answer):
    """One refund; ``state`` is ``pending``, ``succeeded`` or ``failed``."""

    id: str
    attempt_id: str
    amount: int
    currency: str
    state: str
    reason: str
    requester: str
    provider_ref: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class TimelineEntry(_Answer):
    """One entry of the order's history."""

    at: datetime
    kind: str
    from_state: str | None
    to_state: str
    cause: str
    actor: str | None
    note: str
    request_id: str | None


class OrderSummary(_Answer):
    """What every answer about an order carries, none of the shopper's personal data
    (all a key without ``orders:read`` gets from recheck, cancel and refund)."""

    id: str
    state: str
    merchant_reference: str | None
    amount_total: int
    currency: str
    livemode: bool
    created_at: datetime
    updated_at: datetime
    next_action: NextAction | None
    #: Set by the client, not sent by the server: the answer is a replay of an earlier
    #: request with the same Idempotency-Key (header ``Idempotent-Replayed``).
    replayed: bool = False


class OrderReceipt(OrderSummary):
    """What placing an order and paying again answer a key without ``orders:read``."""

    #: The shopper's status page.
    status_url: str


class Order(OrderReceipt):
    """An order with its lines, shopper, flags and payment attempts."""

    items: list[LineItem]
    customer: Shopper
    #: The shopper's language (``en``, ``zh-CN``): of their e-mails and status page.
    locale: str
    #: The first open flag's text, if any (every flag, with its history: ``flags``).
    flag_reason: str | None
    flags: list[Flag]
    payment_attempts: list[PaymentAttempt]


class OrderDetail(Order):
    """An order with its refunds and timeline (``GET /v1/orders/{id}``)."""

    amount_refunded: int
    amount_refundable: int
    partially_refunded: bool
    refunds: list[Refund]
    timeline: list[TimelineEntry]


class RefundSummary(OrderSummary):
    """What a refund answers a key without ``orders:read``: the outcome and the totals."""

    amount_refunded: int
    amount_refundable: int
    partially_refunded: bool
    refunds: list[Refund]


class RefundResult(_Answer):
    """A refund request's answer: the refund it made (the same one for a repeated
    Idempotency-Key) and the order after it."""

    refund: Refund
    order: OrderDetail | RefundSummary
    replayed: bool = False


class OrderPage(_Answer):
    """A page of orders, newest first; ``next_cursor`` fetches the next."""

    data: list[Order]
    next_cursor: str | None


class FieldError(_Answer):
    """One invalid value of a request: where it is and what is wrong with it."""

    loc: list[str | int]
    msg: str


class WebhookEvent(_Answer):
    """A merchant webhook's body: ``{"id", "type", "timestamp", "data"}``; ``id`` is stable
    across deliveries (de-duplicate on it)."""

    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]

    @property
    def order_id(self) -> str | None:
        """The order the event is about."""
        found = self.data.get("order_id")
        return found if isinstance(found, str) else None
