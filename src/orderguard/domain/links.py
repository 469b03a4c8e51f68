"""Where a shopper follows their order: its status page, reached with its token."""

from __future__ import annotations

from orderguard.domain.order import Order


def status_url(public_url: str, order: Order) -> str:
    """The shopper's page for ``order``, carrying its unguessable token."""
    return f"{public_url.rstrip('/')}/orders/{order.id}?token={order.status_token}"
