"""Rebuilding a lost order from the snapshot its charge carries (G4).

A charge whose order is missing is an orphan. When its metadata holds a complete snapshot
whose total and currency are exactly what was charged, the order is rebuilt as it was —
same id, lines, shopper, reference and creation time; a new status token — and walks the
state machine to ``paid`` with the charge as its one payment attempt, caused by the sweep.
Anything less than that (no snapshot, a damaged one, other amounts) is not recovered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderguard.domain.customer import Address, Customer
from orderguard.domain.errors import InvalidOrder
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, OrderLine, PaymentAttempt
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.domain.states import AttemptState
from orderguard.providers.base import Charge
from orderguard.services.snapshot import restore_snapshot

#: The payment method recorded on a rebuilt attempt (the snapshot does not carry it).
RECOVERED_METHOD = "recovered"


def recovered_order(charge: Charge, provider: str, *, at: datetime) -> Order | None:
    """The order ``charge`` paid for, rebuilt and ``paid``; ``None`` when it cannot be."""
    snapshot = restore_snapshot(dict(charge.metadata))
    if snapshot is None or snapshot.get("id") != charge.order_id:
        return None
    try:
        order = _placed(snapshot, at=at)
    except (InvalidOrder, KeyError, TypeError, ValueError):
        return None
    if (order.total.amount, order.currency) != (charge.amount, charge.currency.upper()):
        return None
    if order.total.amount != snapshot["total"]:
        return None
    _pay(order, charge, provider, at=at)
    return order


def _placed(snapshot: dict[str, Any], *, at: datetime) -> Order:
    """The order in ``received`` as the snapshot describes it; raises when it is damaged."""
    email, name, phone = snapshot["cust"]
    line1, line2, city, postal_code, country = snapshot["addr"]
    address = Address(str(line1), str(city), str(postal_code), str(country), _text(line2))
    customer = Customer(str(email), str(name), address, _text(phone))
    lines = [OrderLine(str(s), str(n), _int(q), _int(u)) for s, n, q, u in snapshot["lines"]]
    return Order.place(
        currency=str(snapshot["cur"]),
        lines=lines,
        customer=customer,
        at=datetime.fromisoformat(str(snapshot["at"])),
        merchant_reference=_text(snapshot.get("ref")),
        locale=str(snapshot.get("loc") or "en"),
        cause=Cause.SWEEP,
        order_id=str(snapshot["id"]),
    )


def _pay(order: Order, charge: Charge, provider: str, *, at: datetime) -> None:
    note = f"recovered from the provider's charge {charge.provider_ref}"
    attempt_id = charge.attempt_id or f"pay_recovered_{charge.provider_ref}"
    attempt = PaymentAttempt(
        id=attempt_id,
        order_id=order.id,
        seq=1,
        provider=provider,
        method=RECOVERED_METHOD,
        amount=charge.amount,
        currency=order.currency,
        idempotency_key=f"orderguard-{attempt_id}",
        created_at=charge.created_at,
        updated_at=at,
    )
    order.start_attempt(attempt, cause=Cause.SWEEP, at=at, note=note)
    outcome = Outcome(
        AttemptState.SUCCEEDED,
        provider_ref=charge.provider_ref,
        amount=charge.amount,
        currency=charge.currency.upper(),
        reason=note,
    )
    apply_outcome(order, attempt, outcome, cause=Cause.SWEEP, at=at)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a whole number")
    return value
