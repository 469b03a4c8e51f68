"""Pure pieces of the in-memory fake: what a test method does, 3-D Secure, charges."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from orderguard.providers.base import Charge, ChargeRequest, PaymentOutcome, PaymentResult
from orderguard.providers.stripe import testcards

#: Decline code of a refused 3-D Secure challenge, as Stripe names it.
AUTHENTICATION_FAILED = "payment_intent_authentication_failure"
#: Decline code of a cancelled payment (Stripe's status, when no reason was given).
CANCELED = "canceled"


@dataclass(slots=True)
class Payment:
    """One payment the fake holds."""

    request: ChargeRequest
    result: PaymentResult
    charged_at: datetime | None = None
    refunded: int = 0
    #: Cancelled by the merchant: it can no longer succeed.
    canceled: bool = False


def fingerprint(request: ChargeRequest) -> tuple[object, ...]:
    """What an idempotency key is bound to: every field of the request."""
    fields = dataclasses.astuple(dataclasses.replace(request, metadata={}))
    return (*fields, tuple(sorted(request.metadata.items())))


def first_result(ref: str, request: ChargeRequest, *, now: datetime) -> PaymentResult:
    """The answer to a new payment, decided by its test payment method."""
    behaviour = testcards.TEST_METHODS[request.method]
    base = PaymentResult(
        outcome=PaymentOutcome.SUCCEEDED,
        provider_ref=ref,
        amount=request.amount,
        currency=request.currency,
        order_id=request.order_id,
        attempt_id=request.attempt_id,
        created_at=now,
        metadata={
            **request.metadata,
            "order_id": request.order_id,
            "attempt_id": request.attempt_id,
        },
    )
    if behaviour == "decline":
        return dataclasses.replace(
            base,
            outcome=PaymentOutcome.FAILED,
            decline_code=testcards.DECLINE_CODE,
            retry_with_other_method=True,
        )
    if behaviour == "authenticate":
        return dataclasses.replace(
            base, outcome=PaymentOutcome.ACTION_REQUIRED, redirect_url=f"memory://3ds/{ref}"
        )
    return base


def authenticated(result: PaymentResult, *, approved: bool) -> PaymentResult:
    """The result once the shopper passed or failed the challenge."""
    return dataclasses.replace(
        result,
        outcome=PaymentOutcome.SUCCEEDED if approved else PaymentOutcome.FAILED,
        redirect_url=None,
        retry_with_other_method=not approved,
        decline_code=None if approved else AUTHENTICATION_FAILED,
    )


def cancelled(result: PaymentResult) -> PaymentResult:
    """The result once the merchant cancelled a payment that had not succeeded."""
    return dataclasses.replace(
        result,
        outcome=PaymentOutcome.FAILED,
        redirect_url=None,
        retry_with_other_method=False,
        decline_code=CANCELED,
    )


def charge_of(payment: Payment) -> Charge:
    """A charged payment as the sweeps see it."""
    assert payment.charged_at is not None and payment.result.provider_ref is not None
    return Charge(
        provider_ref=payment.result.provider_ref,
        amount=payment.request.amount,
        currency=payment.request.currency,
        created_at=payment.charged_at,
        amount_refunded=payment.refunded,
        order_id=payment.request.order_id,
        attempt_id=payment.request.attempt_id,
        metadata=payment.result.metadata,
    )
