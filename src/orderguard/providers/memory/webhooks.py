"""The in-memory fake's webhook format: neutral results as signed JSON (Stripe's signing scheme)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from orderguard.providers.base import (
    Charge,
    PaymentOutcome,
    PaymentResult,
    RefundResult,
    WebhookEvent,
)
from orderguard.providers.stripe.signing import SIGNATURE_HEADER, signature_header

_PAYMENT_FIELDS = (
    "provider_ref",
    "amount",
    "currency",
    "decline_code",
    "retry_with_other_method",
    "redirect_url",
    "order_id",
    "attempt_id",
)


def _payment_json(result: PaymentResult) -> dict[str, Any]:
    fields = {name: getattr(result, name) for name in _PAYMENT_FIELDS}
    created = result.created_at.timestamp() if result.created_at else None
    return {
        **fields,
        "outcome": str(result.outcome),
        "created": created,
        "metadata": dict(result.metadata),
    }


def _payment(data: dict[str, Any]) -> PaymentResult:
    created = data.get("created")
    return PaymentResult(
        outcome=PaymentOutcome(data["outcome"]),
        provider_ref=data["provider_ref"],
        amount=data["amount"],
        currency=data["currency"],
        decline_code=data["decline_code"],
        retry_with_other_method=bool(data["retry_with_other_method"]),
        redirect_url=data["redirect_url"],
        order_id=data["order_id"],
        attempt_id=data["attempt_id"],
        created_at=None if created is None else datetime.fromtimestamp(created, UTC),
        metadata=dict(data.get("metadata") or {}),
    )


def encode(
    event_id: str,
    event_type: str,
    *,
    created: float,
    payment: PaymentResult | None = None,
    refund: RefundResult | None = None,
    charge: Charge | None = None,
) -> bytes:
    """An event body."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created": created,
            "payment": None if payment is None else _payment_json(payment),
            "refund": None
            if refund is None
            else {**asdict(refund), "metadata": dict(refund.metadata)},
            "charge": None if charge is None else _charge_json(charge),
        }
    ).encode()


def _charge_json(charge: Charge) -> dict[str, Any]:
    return {
        **asdict(charge),
        "created_at": charge.created_at.timestamp(),
        "metadata": dict(charge.metadata),
    }


def _charge(data: dict[str, Any]) -> Charge:
    return Charge(**{**data, "created_at": datetime.fromtimestamp(float(data["created_at"]), UTC)})


def sign(body: bytes, secret: str, *, timestamp: int) -> dict[str, str]:
    """Headers carrying the signature of ``body``."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(body, secret, timestamp=timestamp),
    }


def decode(body: bytes) -> WebhookEvent:
    """Parse a body made by :func:`encode` (raises ``ValueError``/``KeyError`` if malformed)."""
    data = json.loads(body)
    refund = data.get("refund")
    return WebhookEvent(
        event_id=str(data["id"]),
        type=str(data["type"]),
        created_at=datetime.fromtimestamp(float(data["created"]), UTC),
        payment=None if data.get("payment") is None else _payment(data["payment"]),
        refund=None if refund is None else RefundResult(**refund),
        charge=None if data.get("charge") is None else _charge(data["charge"]),
    )
