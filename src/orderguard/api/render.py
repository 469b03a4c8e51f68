"""Orders as JSON documents (the shapes of :mod:`orderguard.api.schemas`)."""

from __future__ import annotations

from typing import Any

import orjson

from orderguard.domain.events import TimelineEntry
from orderguard.domain.links import status_url
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import OrderState

__all__ = ["detail_json", "order_document", "order_json", "status_url", "summary_json"]


def order_document(order: Order, public_url: str) -> dict[str, Any]:
    """An order as :class:`~orderguard.api.schemas.OrderOut`."""
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
        "next_action": _next_action(order),
        "payment_attempts": [_attempt(a) for a in order.attempts],
    }


def summary_json(document: bytes, fields: tuple[str, ...]) -> bytes:
    """Only ``fields`` of an order's JSON ``document`` (as bytes again)."""
    full = orjson.loads(document)
    return orjson.dumps({name: full[name] for name in fields if name in full})


def order_json(order: Order, public_url: str) -> bytes:
    """An order as the bytes of a JSON response."""
    return orjson.dumps(order_document(order, public_url))


def refund_totals(order: Order) -> dict[str, Any]:
    """The order's refunds and their sums, as :class:`~orderguard.api.schemas.RefundTotalsOut`."""
    return {
        "amount_refunded": order.amount_refunded,
        "amount_refundable": order.amount_refundable,
        "partially_refunded": order.partially_refunded,
        "refunds": [r.fields() for r in order.refunds],
    }


def detail_json(order: Order, timeline: list[TimelineEntry], public_url: str) -> bytes:
    """An order with its refunds and timeline (:class:`~orderguard.api.schemas.OrderDetailOut`)."""
    document = {**order_document(order, public_url), **refund_totals(order)}
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


def _next_action(order: Order) -> dict[str, str] | None:
    if order.state is not OrderState.ACTION_REQUIRED or not order.attempts:
        return None
    url = order.attempts[-1].redirect_url
    return {"type": "redirect", "redirect_url": url} if url else None
