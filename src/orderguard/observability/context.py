"""What the current request is: its id, and the shopper data it carries (to redact).

Context variables, so every log line of a request and every timeline entry it causes (in
the request or in a task it started) finds them; the worker runs outside any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

from orderguard.domain.customer import Customer
from orderguard.request_id import current_request_id, request_id_set

__all__ = [
    "current_request_id",
    "personal_values",
    "remember_customer",
    "remember_personal",
    "request_context",
]

_PERSONAL: ContextVar[frozenset[str]] = ContextVar("orderguard_personal", default=frozenset())


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Run a block as request ``request_id``: logs and timeline entries carry the id."""
    personal = _PERSONAL.set(frozenset())
    # bound_contextvars would read every context variable to learn what to restore; the
    # tokens restore exactly what was there (the block runs in one context)
    logged = structlog.contextvars.bind_contextvars(request_id=request_id)
    with request_id_set(request_id):
        try:
            yield
        finally:
            structlog.contextvars.reset_contextvars(**logged)
            _PERSONAL.reset(personal)


def remember_personal(values: Iterable[str | None]) -> None:
    """Shopper data the request carries; redacted wherever it shows up in its log lines."""
    fresh = {v.strip() for v in values if v and len(v.strip()) >= 3}
    _PERSONAL.set(_PERSONAL.get() | fresh)


def remember_customer(customer: Customer) -> Customer:
    """Remember a shopper's name, e-mail, phone and street address for redaction."""
    a = customer.shipping_address
    remember_personal(
        [customer.name, customer.email, customer.phone, a.line1, a.line2, a.postal_code, a.city]
    )
    return customer


def personal_values() -> frozenset[str]:
    """The shopper data remembered for the current request."""
    return _PERSONAL.get()
