"""Orders as JSON documents (the shapes of :mod:`orderguard.api.schemas`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from orderguard.api.ports import Wired
from orderguard.domain.events import TimelineEntry
from orderguard.domain.links import status_url
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.services.providers import Providers
from orderguard.services.shopper_action import ActionKind, ShopperAction

__all__ = [
    "Actions",
    "Documents",
    "Payments",
    "detail_json",
    "next_action",
    "order_document",
    "order_json",
    "status_url",
    "summary_json",
]

#: What the shopper must do for an order now (``Payments.shopper_action``).
Actions = Callable[[Order], ShopperAction | None]


class Payments(Protocol):
    """The payments, as far as the API goes: the providers (their breakers, their webhook
    replies) and what the shopper must do for an order (its ``next_action``)."""

    @property
    def providers(self) -> Providers: ...

    def shopper_action(self, order: Order) -> ShopperAction | None: ...


class Documents(Wired, Protocol):
    """What a route that answers an order's document reads."""

    @property
    def payments(self) -> Payments: ...


def order_document(order: Order, public_url: str, actions: Actions) -> dict[str, Any]:
    """An order as :class:`~orderguard.api.schemas.OrderOut` (its ``next_action`` as
    ``actions`` says)."""
    customer, address = order.customer, order.customer.shipping_address
    return {
        "id": order.id,
        "state": str(order.state),
        "merchant_reference": order.merchant_reference,
        "amount_total": order.total.amount,
        "currency": order.currency,
        "items": [
            {
                "sku": li.sku,
                "name": li.name,
                "quantity": li.quantity,
                "unit_amount": li.unit_amount,
                "amount": li.amount,
            }
            for li in order.lines
        ],
        "customer": {
            "email": customer.email,
            "name": customer.name,
            "phone": customer.phone,
            "shipping_address": {
                "line1": address.line1,
                "line2": address.line2,
                "city": address.city,
                "postal_code": address.postal_code,
                "country": address.country,
            },
        },
        "locale": order.locale,
        "flag_reason": order.flag_reason,
        "livemode": order.livemode,
        "flags": [f.fields() for f in order.flags],
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "status_url": status_url(public_url, order),
        "next_action": next_action(actions(order)),
        "payment_attempts": [_attempt(a) for a in order.attempts],
    }


def summary_json(document: bytes, fields: tuple[str, ...]) -> bytes:
    """Only ``fields`` of an order's JSON ``document`` (as bytes again)."""
    full = orjson.loads(document)
    return orjson.dumps({name: full[name] for name in fields if name in full})


def order_json(order: Order, public_url: str, actions: Actions) -> bytes:
    """An order as the bytes of a JSON response."""
    return orjson.dumps(order_document(order, public_url, actions))


def refund_totals(order: Order) -> dict[str, Any]:
    """The order's refunds and their sums, as :class:`~orderguard.api.schemas.RefundTotalsOut`."""
    return {
        "amount_refunded": order.amount_refunded,
        "amount_refundable": order.amount_refundable,
        "partially_refunded": order.partially_refunded,
        "refunds": [r.fields() for r in order.refunds],
    }


def detail_json(
    order: Order, timeline: list[TimelineEntry], public_url: str, actions: Actions
) -> bytes:
    """An order with its refunds and timeline (:class:`~orderguard.api.schemas.OrderDetailOut`)."""
    document = {**order_document(order, public_url, actions), **refund_totals(order)}
    document["timeline"] = [
        {
            "at": e.at,
            "kind": str(e.kind),
            "from_state": e.from_state,
            "to_state": e.to_state,
            "cause": str(e.cause),
            "actor": e.actor,
            "note": e.note,
            "request_id": e.request_id,
        }
        for e in timeline
    ]
    return orjson.dumps(document)


def _attempt(attempt: PaymentAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "seq": attempt.seq,
        "provider": attempt.provider,
        "method": attempt.method,
        "state": str(attempt.state),
        "amount": attempt.amount,
        "currency": attempt.currency,
        "provider_ref": attempt.provider_ref,
        "decline_code": attempt.decline_code,
        "created_at": attempt.created_at,
        "updated_at": attempt.updated_at,
    }


def next_action(action: ShopperAction | None) -> dict[str, Any] | None:
    """``action`` as :class:`~orderguard.api.schemas.NextAction` (a page to open) or
    :class:`~orderguard.api.schemas.ScanQrCode` (a code to show the shopper)."""
    if action is None:
        return None
    if action.kind is ActionKind.SCAN_QR_CODE:
        return {"type": str(action.kind), "code_url": action.url, "expires_at": action.expires_at}
    return {"type": str(action.kind), "redirect_url": action.url}
