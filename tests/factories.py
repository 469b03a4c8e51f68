"""Test data: valid order bodies and domain objects, varied on demand."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from orderguard.domain.customer import Address, Customer
from orderguard.domain.order import Order, OrderLine

BODY: dict[str, Any] = {
    "merchant_reference": None,
    "currency": "EUR",
    "items": [{"sku": "TEE-M", "name": "T-shirt", "quantity": 2, "unit_amount": 1999}],
    "customer": {
        "email": "Ana@Example.com",
        "name": "Ana Silva",
        "phone": "912 345 678",
        "shipping_address": {
            "line1": "Rua Augusta 1",
            "city": "Lisboa",
            "postal_code": "1100-048",
            "country": "PT",
        },
    },
}


def order_body(**changes: Any) -> dict[str, Any]:
    """A valid ``POST /v1/orders`` body with a unique merchant reference."""
    body = copy.deepcopy(BODY)
    body["merchant_reference"] = f"T-{uuid.uuid4().hex[:12]}"
    body.update(changes)
    return body


def key() -> dict[str, str]:
    """Headers carrying a fresh Idempotency-Key."""
    return {"Idempotency-Key": str(uuid.uuid4())}


def customer() -> Customer:
    """A normalised shopper."""
    address = Address("Rua Augusta 1", "Lisboa", "1100-048", "PT")
    return Customer("ana@example.com", "Ana Silva", address, "+351912345678")


def new_order(*, reference: str | None = None, at: datetime | None = None) -> Order:
    """An order in ``received``."""
    return Order.place(
        currency="EUR",
        lines=[OrderLine("TEE-M", "T-shirt", 2, 1999), OrderLine("MUG", "Mug", 1, 850)],
        customer=customer(),
        at=at or datetime.now(UTC),
        merchant_reference=reference,
    )
