"""Stripe objects, as plain JSON dicts, turned into provider-neutral results. Pure functions.

Every amount Stripe reports is in Stripe's units (:mod:`.stripe_currencies`) and is turned
into ISO 4217 minor units here, so what the rest of orderguard compares is like with like.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orderguard.providers.base import (
    AmountNotExact,
    Charge,
    PaymentOutcome,
    PaymentResult,
    RefundResult,
    UnreadableAmount,
    WebhookEvent,
)
from orderguard.providers.stripe import currencies as stripe_currencies

#: PaymentIntent status -> outcome; ``requires_payment_method`` is decided by its last error.
STATUS_OUTCOMES: dict[str, PaymentOutcome] = {
    "succeeded": PaymentOutcome.SUCCEEDED,
    "requires_action": PaymentOutcome.ACTION_REQUIRED,
    "processing": PaymentOutcome.PENDING,
    "canceled": PaymentOutcome.FAILED,
    "requires_confirmation": PaymentOutcome.PENDING,
    "requires_capture": PaymentOutcome.PENDING,
}

#: Error code of a request the PaymentIntent's status does not allow (e.g. cancelling a
#: succeeded one); the error carries the intent as it stands.
UNEXPECTED_STATE = "payment_intent_unexpected_state"

#: Decline code of a cancelled PaymentIntent that gives no ``cancellation_reason``.
CANCELED = "canceled"

#: Stripe metadata limits: keys per object, characters per key and per value.
METADATA_LIMITS = (50, 40, 500)

Json = Mapping[str, Any]


def timestamp(value: int | None) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def iso_amount(amount: Any, currency: Any) -> int:
    """A Stripe ``amount`` in ``currency`` as ISO minor units; :class:`UnreadableAmount` when
    it has no exact ISO value (e.g. 1.50 ISK)."""
    value = int(amount)
    try:
        return stripe_currencies.from_stripe(value, str(currency))
    except AmountNotExact as exc:
        raise UnreadableAmount(f"Stripe reported {value} in {currency}: {exc}") from exc


def metadata(obj: Json) -> dict[str, str]:
    """An object's metadata as a plain ``str -> str`` dict."""
    return {str(key): str(value) for key, value in (obj.get("metadata") or {}).items()}


def compact_metadata(
    values: Mapping[str, str], *, order_id: str, attempt_id: str
) -> dict[str, str]:
    """Metadata that fits Stripe's limits, always led by ``order_id`` and ``attempt_id``."""
    max_keys, max_key, max_value = METADATA_LIMITS
    merged = {"order_id": order_id, "attempt_id": attempt_id, **values}
    merged.update(order_id=order_id, attempt_id=attempt_id)
    items = list(merged.items())[:max_keys]
    return {key[:max_key]: value[:max_value] for key, value in items}


def _outcome(intent: Json) -> PaymentOutcome:
    status = str(intent.get("status"))
    if status == "requires_payment_method":
        failed = intent.get("last_payment_error") is not None
        return PaymentOutcome.FAILED if failed else PaymentOutcome.PENDING
    return STATUS_OUTCOMES.get(status, PaymentOutcome.PENDING)


def _redirect_url(intent: Json) -> str | None:
    redirect = (intent.get("next_action") or {}).get("redirect_to_url") or {}
    url = redirect.get("url")
    return None if url is None else str(url)


def _decline(intent: Json) -> tuple[str | None, bool]:
    if intent.get("status") == "canceled":
        return str(intent.get("cancellation_reason") or CANCELED), False
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code")
    retry_other = intent.get("status") == "requires_payment_method" and bool(error)
    return (None if code is None else str(code)), retry_other


def payment_result(intent: Json) -> PaymentResult:
    """A PaymentIntent as a :class:`PaymentResult`."""
    outcome = _outcome(intent)
    decline_code, retry_other = (
        _decline(intent) if outcome is PaymentOutcome.FAILED else (None, False)
    )
    meta = metadata(intent)
    currency = intent.get("currency")
    return PaymentResult(
        outcome=outcome,
        provider_ref=str(intent["id"]),
        amount=None
        if intent.get("amount") is None or currency is None
        else iso_amount(intent["amount"], currency),
        currency=None if currency is None else str(currency).upper(),
        decline_code=decline_code,
        retry_with_other_method=retry_other,
        redirect_url=_redirect_url(intent) if outcome is PaymentOutcome.ACTION_REQUIRED else None,
        order_id=meta.get("order_id"),
        attempt_id=meta.get("attempt_id"),
        created_at=timestamp(intent.get("created")),
        metadata=meta,
    )


def declined_result(error: Json) -> PaymentResult:
    """A card error (HTTP 402) as a FAILED result, from its embedded PaymentIntent if any."""
    intent = error.get("payment_intent")
    code = error.get("decline_code") or error.get("code")
    if intent:
        result = payment_result(intent)
        if result.outcome is PaymentOutcome.FAILED:
            return result
    return PaymentResult(
        outcome=PaymentOutcome.FAILED,
        provider_ref=None if not intent else str(intent["id"]),
        decline_code=None if code is None else str(code),
        retry_with_other_method=True,
    )


def error_intent(error: Json) -> Json | None:
    """The PaymentIntent an error body's ``error`` object embeds, if any."""
    intent = error.get("payment_intent")
    return intent if isinstance(intent, Mapping) and intent.get("id") else None


def charge(obj: Json) -> Charge:
    """A Charge; ``provider_ref`` is its PaymentIntent's id (what attempts store)."""
    meta = metadata(obj)
    return Charge(
        provider_ref=str(obj.get("payment_intent") or obj["id"]),
        amount=iso_amount(obj["amount"], obj["currency"]),
        currency=str(obj["currency"]).upper(),
        created_at=datetime.fromtimestamp(int(obj["created"]), UTC),
        amount_refunded=iso_amount(obj.get("amount_refunded") or 0, obj["currency"]),
        order_id=meta.get("order_id"),
        attempt_id=meta.get("attempt_id"),
        metadata=meta,
    )


def refund_result(obj: Json, *, provider_ref: str | None = None) -> RefundResult:
    """A Refund object as a :class:`RefundResult` (its ``metadata`` carries our ``refund_id``)."""
    return RefundResult(
        refund_ref=str(obj["id"]),
        provider_ref=str(obj.get("payment_intent") or provider_ref or obj.get("charge")),
        amount=iso_amount(obj["amount"], obj["currency"]),
        currency=str(obj["currency"]).upper(),
        status=str(obj.get("status")),
        failure_reason=None if obj.get("failure_reason") is None else str(obj["failure_reason"]),
        metadata=metadata(obj),
    )


def webhook_event(event: Json) -> WebhookEvent:
    """A Stripe Event as a :class:`WebhookEvent`.

    ``charge.refunded`` carries the Charge with its cumulative ``amount_refunded`` and, since
    API version 2022-11-15, no list of refunds: it becomes :attr:`WebhookEvent.charge`. Each
    refund comes as a Refund object in ``refund.created`` / ``refund.updated``.
    """
    obj = (event.get("data") or {}).get("object") or {}
    kind = obj.get("object")
    created = timestamp(event.get("created")) or datetime.now(UTC)
    return WebhookEvent(
        event_id=str(event["id"]),
        type=str(event["type"]),
        created_at=created,
        payment=payment_result(obj) if kind == "payment_intent" else None,
        refund=refund_result(obj) if kind == "refund" else None,
        charge=charge(obj) if kind == "charge" and event.get("type") == "charge.refunded" else None,
    )
