"""Stripe-shaped JSON objects and error bodies, built the way Stripe's API returns them."""

from __future__ import annotations

import secrets
from typing import Any

from orderguard.providers.stripe import testcards

Obj = dict[str, Any]

#: Test payment method -> what the sandbox does with it, like Stripe's test cards.
TEST_METHODS = testcards.TEST_METHODS


def new_id(prefix: str) -> str:
    """A Stripe-looking id such as ``pi_3Q...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_intent(params: Obj, *, intent_id: str, created: int) -> Obj:
    """A fresh PaymentIntent from creation parameters, before confirmation.

    It carries every field Stripe sends (``null`` where Stripe sends null for a card payment
    confirmed at creation, without customer, Connect or shipping); ``return_url`` is the
    sandbox's own addition, read by its 3-D Secure page.
    """
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": int(params["amount"]),
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": str(params["currency"]).lower(),
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": dict(params.get("metadata") or {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": params.get("payment_method"),
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_confirmation",
        "transfer_data": None,
        "transfer_group": None,
        "return_url": params.get("return_url"),
    }


def _no_billing_details() -> Obj:
    """A card's billing details when the shopper gave none (a new dict every time: a
    charge's are its own)."""
    address = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {"address": address, "email": None, "name": None, "phone": None}


#: What Stripe says about a declined card charge.
DECLINED_MESSAGE = "Your card was declined."


def _outcome(status: str) -> Obj:
    """A Charge's ``outcome``: authorized, or declined by the issuer."""
    if status == "succeeded":
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "network_status": "declined_by_network",
        "reason": testcards.DECLINE_CODE,
        "risk_level": "normal",
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def charge(intent: Obj, *, status: str, created: int, failure_code: str | None = None) -> Obj:
    """The Charge a confirmation attempt of ``intent`` produced.

    Like Stripe since API version 2022-11-15 it has no ``refunds`` list: refunds show in the
    cumulative ``amount_refunded`` and as Refund objects of their own.
    """
    succeeded = status == "succeeded"
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if succeeded else None,
        "billing_details": _no_billing_details(),
        "calculated_statement_descriptor": "ORDERGUARD SANDBOX" if succeeded else None,
        "captured": succeeded,
        "created": created,
        "currency": intent["currency"],
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": DECLINED_MESSAGE if failure_code else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(status),
        "paid": succeeded,
        "payment_intent": intent["id"],
        "payment_method": intent["payment_method"],
        "payment_method_details": {"type": "card"},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    charge_obj: Obj,
    *,
    amount: int,
    created: int,
    reason: str | None = None,
    metadata: Obj | None = None,
) -> Obj:
    """A succeeded Refund of ``amount`` on ``charge_obj`` (``metadata`` as the caller sent it)."""
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": charge_obj["id"],
        "created": created,
        "currency": charge_obj["currency"],
        "metadata": dict(metadata or {}),
        "payment_intent": charge_obj["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def event(event_type: str, obj: Obj, *, created: int) -> Obj:
    """An Event wrapping a snapshot of ``obj``."""
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "type": event_type,
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def search_result(data: list[Obj], url: str, *, next_page: str | None = None) -> Obj:
    """A Search result page; ``next_page`` (``has_more``) when more results follow."""
    return {
        "object": "search_result",
        "data": data,
        "has_more": next_page is not None,
        "next_page": next_page,
        "url": url,
    }


def list_page(data: list[Obj], *, has_more: bool, url: str) -> Obj:
    """A List page."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def error(kind: str, message: str, **extra: Any) -> Obj:
    """A Stripe error body: ``{"error": {"type": ..., "message": ..., ...}}``.

    Fields given as ``None`` are left out, as Stripe leaves out what does not apply.
    """
    present = {name: value for name, value in extra.items() if value is not None}
    return {"error": {"type": kind, "message": message, **present}}


def rate_limited() -> Obj:
    """The 429 body: Stripe has no rate-limit error *type*; it is a request error coded so."""
    return error(
        "invalid_request_error",
        "Request rate limit exceeded. You can learn more about rate limits in Stripe's "
        "documentation (sandbox fault).",
        code="rate_limit",
    )


def unrecognized_url(method: str, path: str) -> Obj:
    """The 404 body of a URL the API does not have, as Stripe words it."""
    return error(
        "invalid_request_error",
        f"Unrecognized request URL ({method}: {path}). The sandbox serves only the part of "
        "Stripe's API that orderguard uses.",
    )


def unexpected_state(intent: Obj, action: str, allowed: tuple[str, ...]) -> Obj:
    """The 400 body of an action the PaymentIntent's status forbids, carrying the intent."""
    return error(
        "invalid_request_error",
        f"You cannot {action} this PaymentIntent because it has a status of "
        f"{intent['status']}. Only a PaymentIntent with one of the following statuses may "
        f"be {action}ed: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        doc_url="https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
        payment_intent=intent,
    )


def card_declined(intent: Obj) -> Obj:
    """The 402 body of a declined card, carrying the PaymentIntent like Stripe does."""
    return error(
        "card_error",
        "Your card was declined.",
        code="card_declined",
        decline_code=testcards.DECLINE_CODE,
        charge=intent["latest_charge"],
        payment_intent=intent,
    )
