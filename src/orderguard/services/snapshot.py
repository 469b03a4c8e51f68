"""A compact copy of the order carried in the provider's payment metadata.

If the database loses an order whose charge went through (G4), the orphan sweep rebuilds
the order from this snapshot. A provider's metadata values are short (its profile says
how short: :class:`~orderguard.providers.profile.MetadataLimits`), so the JSON is split
across ``og_snap_0``, ``og_snap_1``, ...
"""

from __future__ import annotations

from typing import Any

import orjson

from orderguard.domain.order import Order
from orderguard.providers.profile import CARD_PROFILE, MetadataLimits

#: Characters of each value left unused (the provider may count differently).
VALUE_MARGIN = 20
#: Keys left for the ids and the provider's own.
KEY_MARGIN = 10
_PREFIX = "og_snap_"


def snapshot_metadata(
    order: Order, attempt_id: str, *, limits: MetadataLimits = CARD_PROFILE.capabilities.metadata
) -> dict[str, str]:
    """Metadata for a charge: ids first, then the order snapshot in chunks that fit the
    provider's ``limits`` (an order too large for them travels without a snapshot)."""
    chunk, max_chunks = limits.value_chars - VALUE_MARGIN, limits.keys - KEY_MARGIN
    customer, address = order.customer, order.customer.shipping_address
    snapshot = {
        "id": order.id,
        "ref": order.merchant_reference,
        "cur": order.currency,
        "total": order.total.amount,
        "loc": order.locale,
        "at": order.created_at.isoformat(),
        "lines": [[li.sku, li.name, li.quantity, li.unit_amount] for li in order.lines],
        "cust": [customer.email, customer.name, customer.phone],
        "addr": [address.line1, address.line2, address.city, address.postal_code, address.country],
    }
    text = orjson.dumps(snapshot).decode()
    chunks = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    metadata = {"order_id": order.id, "attempt_id": attempt_id}
    if len(chunks) <= max_chunks:
        metadata.update({f"{_PREFIX}{i}": chunk for i, chunk in enumerate(chunks)})
    return metadata


def restore_snapshot(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The snapshot carried in ``metadata``, or ``None`` when absent or incomplete."""
    chunks: list[str] = []
    while f"{_PREFIX}{len(chunks)}" in metadata:
        chunks.append(metadata[f"{_PREFIX}{len(chunks)}"])
    try:
        snapshot = orjson.loads("".join(chunks)) if chunks else None
    except orjson.JSONDecodeError:
        return None
    return snapshot if isinstance(snapshot, dict) else None
