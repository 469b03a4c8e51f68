"""Stripe-shaped JSON objects and error bodies, built the way Stripe's API returns them."""

from __future__ import annotations

import secrets
from typing import Any

from orderguard.providers import testcards

Obj = dict[str, Any]

#: Test payment method -> what the sandbox does with it, like Stripe's test cards.
TEST_METHODS = testcards.TEST_METHODS


def new_id(prefix: str) -> str:
    """A Stripe-looking id such as ``pi_3Q...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_intent(params: Obj, *, intent_id: str, created: int) -> Obj:
    """A fresh PaymentIntent from creation parameters, before confirmation."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": int(params["amount"]),
        "amount_received": 0,
        "currency": str(params["currency"]).lower(),
        "status": "requires_confirmation",
        "payment_method": params.get("payment_method"),
        "return_url": params.get("return_url"),
        "metadata": dict(params.get("metadata") or {}),
        "created": created,
        "livemode": False,
        "latest_charge": None,
        "last_payment_error": None,
        "next_action": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
    }


def charge(intent: Obj, *, status: str, created: int, failure_code: str | None = None) -> Obj:
    """The Charge a confirmation attempt of ``intent`` produced."""
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if status == "succeeded" else 0,
        "amount_refunded": 0,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "payment_method": intent["payment_method"],
        "status": status,
        "paid": status == "succeeded",
        "refunded": False,
        "failure_code": failure_code,
        "metadata": dict(intent["metadata"]),
        "created": created,
        "livemode": False,
    }


def refund(charge_obj: Obj, *, amount: int, created: int) -> Obj:
    """A succeeded Refund of ``amount`` on ``charge_obj``."""
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": charge_obj["currency"],
        "charge": charge_obj["id"],
        "payment_intent": charge_obj["payment_intent"],
        "status": "succeeded",
        "metadata": {},
        "created": created,
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
    """A Stripe error body: ``{"error": {"type": ..., "message": ..., ...}}``."""
    return {"error": {"type": kind, "message": message, **extra}}


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
