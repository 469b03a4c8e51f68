"""Charging an order safely (G3, G5).

``prepare`` runs inside the caller's unit of work: it picks a provider whose circuit is
closed (failing over to the next one), creates the payment attempt with an idempotency
key derived from the attempt id, and moves the order to ``payment_pending``; it is
committed before the provider is called. ``send`` calls the provider outside any
transaction, within the time budget, and turns every failure into an honest outcome:
a request that may have reached the provider is ``unknown`` (resolved later by asking
the provider, never by charging again with a new key); one that certainly did not stays
``pending`` and is re-sent with the same key. ``settle`` applies the outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain import ids
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import apply_refund_failure
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState
from orderguard.providers.base import (
    ChargeRequest,
    PaymentOutcome,
    PaymentResult,
    ProviderBusy,
    ProviderError,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
    RefundResult,
)
from orderguard.providers.resilience import is_transport_failure
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.settling import Answered, apply_answers
from orderguard.services.shopper_action import ShopperAction, shopper_action
from orderguard.services.snapshot import snapshot_metadata

#: Provider outcomes in attempt terms.
ATTEMPT_STATE: dict[PaymentOutcome, AttemptState] = {
    PaymentOutcome.SUCCEEDED: AttemptState.SUCCEEDED,
    PaymentOutcome.FAILED: AttemptState.FAILED,
    PaymentOutcome.ACTION_REQUIRED: AttemptState.ACTION_REQUIRED,
    PaymentOutcome.PENDING: AttemptState.PENDING,
    PaymentOutcome.UNKNOWN: AttemptState.UNKNOWN,
}
#: The note left on an order that waits for a provider to come back.
WAITING_NOTE = "payment waiting: every payment provider is unavailable (circuit open)"


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """How payments are made."""

    #: Where the shopper lands after authenticating; ``{order_id}`` and ``{token}`` filled in.
    return_url: str
    #: The longest a charge call may take before its outcome counts as unknown, in seconds.
    time_budget_s: float = 10.0
    #: How long the shopper has for a step outside the shop (3-D Secure, a wallet's page or
    #: QR code) before the order is cancelled (``expire_abandoned``'s ``after``).
    action_expiry: timedelta = timedelta(minutes=30)


def outcome_of(result: PaymentResult) -> Outcome:
    """A provider's result in domain terms."""
    return Outcome(
        state=ATTEMPT_STATE[result.outcome],
        provider_ref=result.provider_ref,
        amount=result.amount,
        currency=result.currency.upper() if result.currency else None,
        decline_code=result.decline_code,
        redirect_url=result.redirect_url,
    )


class Payments:
    """Creates payment attempts and sends them to providers."""

    def __init__(self, providers: Providers, settings: PaymentSettings) -> None:
        self.providers = providers
        self.settings = settings

    def prepare(
        self, order: Order, method: str, *, cause: Cause, at: datetime
    ) -> PaymentAttempt | None:
        """Start an attempt at an available provider, or leave the order waiting for one."""
        slot = self.providers.choose(method)
        if slot is None:
            order.wait_for_provider(method, WAITING_NOTE, cause=cause, at=at)
            return None
        return self._start(order, slot, method, cause=cause, at=at)

    def prepare_quietly(
        self, order: Order, method: str, *, cause: Cause, at: datetime
    ) -> PaymentAttempt | None:
        """:meth:`prepare` at the preferred provider when its breaker is closed, where
        choosing it changes nothing (a half-open breaker gives its one probe to the caller
        that asks): an attempt that may yet be dropped unsent (intake, before it knows the
        request is not a replay). ``None``, and ``order`` untouched, otherwise."""
        slot = self.providers.first_for(method)
        if slot is None or not slot.breaker.closed:
            return None
        return self._start(order, slot, method, cause=cause, at=at)

    def _start(
        self, order: Order, slot: ProviderSlot, method: str, *, cause: Cause, at: datetime
    ) -> PaymentAttempt:
        """Start ``order``'s next attempt at ``slot``."""
        attempt_id = ids.new_id("pay")
        attempt = PaymentAttempt(
            id=attempt_id,
            order_id=order.id,
            seq=len(order.attempts) + 1,
            provider=slot.name,
            method=method,
            amount=order.total.amount,
            currency=order.currency,
            idempotency_key=f"orderguard-{attempt_id}",
            created_at=at,
            updated_at=at,
        )
        note = f"attempt {attempt.seq} sent to {slot.name}"
        preferred = self.providers.first_for(method)
        if preferred is not None and slot is not preferred:
            note += f" (failover: {preferred.name} circuit is open)"
        order.start_attempt(attempt, livemode=slot.livemode, cause=cause, at=at, note=note)
        return attempt

    async def send(self, order: Order, attempt: PaymentAttempt) -> Outcome:
        """Ask the attempt's provider to charge, within the time budget."""
        slot = self.providers.named(attempt.provider)
        request = self.charge_request(order, attempt)
        try:
            async with asyncio.timeout(self.settings.time_budget_s):  # no task of its own
                result = await slot.provider.create_payment(request)
        except (TimeoutError, ProviderError) as exc:
            _record(slot, exc)
            return failure_outcome(exc)
        slot.breaker.record_success()
        return outcome_of(result)

    def charge_request(self, order: Order, attempt: PaymentAttempt) -> ChargeRequest:
        """What :meth:`send` asks the attempt's provider: the same request on every re-send
        (key, amount, metadata with the order snapshot, expiry)."""
        slot = self.providers.named(attempt.provider)
        return ChargeRequest(
            attempt_id=attempt.id,
            order_id=order.id,
            amount=attempt.amount,
            currency=attempt.currency,
            method=attempt.method,
            return_url=self.settings.return_url.format(order_id=order.id, token=order.status_token),
            idempotency_key=attempt.idempotency_key,
            metadata=snapshot_metadata(order, attempt.id, limits=slot.capabilities.metadata),
            expires_at=self.expires_at(attempt),
        )

    def expires_at(self, attempt: PaymentAttempt) -> datetime:
        """When ``attempt``'s payment expires at the provider: its start plus the action
        expiry, whole seconds (the same on every re-send of the attempt, so the same key is
        sent with the same request). ``expire_abandoned`` counts from the order's move to
        ``action_required``, an instant later: the provider's payment closes itself no
        later than orderguard closes it."""
        return (attempt.created_at + self.settings.action_expiry).replace(microsecond=0)

    def shopper_action(self, order: Order) -> ShopperAction | None:
        """What the shopper must do outside the shop for ``order`` now: open a page or
        scan a code (:mod:`.shopper_action`), or ``None``."""
        return shopper_action(order, self.providers, self.expires_at)

    def settle(
        self, order: Order, attempt_id: str, outcome: Outcome, *, cause: Cause, at: datetime
    ) -> None:
        """Apply ``outcome`` to the order's attempt ``attempt_id`` (not stored: see
        :mod:`.settling` for storing it)."""
        apply_answers(order, [Answered(attempt_id, outcome)], cause=cause, at=at)


def record_refund_failure(
    order: Order,
    attempt: PaymentAttempt | None,
    refund: RefundResult,
    *,
    cause: Cause,
    at: datetime,
) -> None:
    """Flag ``order``: the provider reports ``refund`` failed, so the shopper was not paid back."""
    apply_refund_failure(
        order,
        attempt,
        refund_ref=refund.refund_ref,
        amount=refund.amount,
        currency=refund.currency,
        reason=refund.failure_reason or refund.status,
        cause=cause,
        at=at,
    )


def failure_outcome(exc: BaseException) -> Outcome:
    """What a failed charge call means for the attempt (G3: never guess a charge away)."""
    match exc:
        case ProviderUnavailable() | ProviderRateLimited():
            reason = f"not delivered to the provider ({exc}); it will be re-sent with the same key"
            return Outcome(AttemptState.PENDING, reason=reason)
        case ProviderRejected(safe_to_retry=True):
            reason = f"the provider asked for a retry and retries ran out: {exc}"
            return Outcome(AttemptState.UNKNOWN, reason=reason)
        case ProviderRejected():
            return Outcome(AttemptState.FAILED, decline_code="processing_error", reason=str(exc))
        case ProviderKeyConflict():
            reason = f"key refused; the first request sent with it may have charged: {exc}"
            return Outcome(AttemptState.UNKNOWN, reason=reason)
        case ProviderServerError():
            return Outcome(AttemptState.UNKNOWN, reason=f"provider error after retries: {exc}")
        case ProviderBusy():
            reason = f"another request with this key is still in progress: {exc}"
            return Outcome(AttemptState.UNKNOWN, reason=reason)
        case ProviderOutcomeUnknown():
            return Outcome(AttemptState.UNKNOWN, reason=f"answer lost after sending: {exc}")
        case TimeoutError():
            return Outcome(AttemptState.UNKNOWN, reason="no answer within the time budget")
    return Outcome(AttemptState.UNKNOWN, reason=f"unexpected provider failure: {exc!r}")


def _record(slot: ProviderSlot, exc: BaseException) -> None:
    if isinstance(exc, TimeoutError) or is_transport_failure(exc):
        slot.breaker.record_failure()
    else:
        slot.breaker.record_success()
