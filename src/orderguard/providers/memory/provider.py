"""An in-memory ``PaymentProvider`` for tests, shipped with the package.

It knows the same test payment methods as the sandbox (:mod:`.testcards`), honours
idempotency keys, records every successful charge, cancels payments that have not
succeeded, produces signed webhooks in :attr:`InMemoryProvider.webhooks`, and can be told
to fail the next call (:meth:`fail_next`).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from orderguard.providers.base import (
    AmountRule,
    Charge,
    ChargeRequest,
    InvalidWebhook,
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderKeyConflict,
    ProviderRejected,
    RefundResult,
    WebhookEvent,
)
from orderguard.providers.memory import webhooks as memory_webhooks
from orderguard.providers.memory.payments import (
    Payment,
    authenticated,
    cancelled,
    charge_of,
    fingerprint,
    first_result,
)
from orderguard.providers.stripe import testcards
from orderguard.providers.stripe.signing import (
    DEFAULT_TOLERANCE_S,
    SIGNATURE_HEADER,
    header_value,
    verify_signature,
)

#: Event type per outcome a payment can reach.
EVENT_TYPES = {
    PaymentOutcome.SUCCEEDED: "payment_intent.succeeded",
    PaymentOutcome.FAILED: "payment_intent.payment_failed",
    PaymentOutcome.ACTION_REQUIRED: "payment_intent.requires_action",
}


class InMemoryProvider:
    """A payment provider living in a dict; ``clock`` gives unix seconds for ``created``."""

    def __init__(
        self,
        *,
        name: str = "memory",
        webhook_secret: str = "whsec_memory",
        clock: Callable[[], float] = time.time,
        webhook_tolerance_s: int = DEFAULT_TOLERANCE_S,
        amount_rules: Mapping[str, AmountRule] | None = None,
    ) -> None:
        self.name = name
        #: Rules per currency a test sets; any other currency charges every positive amount
        #: in ISO minor units (the fake's own units).
        self.rules: dict[str, AmountRule] = dict(amount_rules or {})
        self.webhook_secret = webhook_secret
        self._clock = clock
        self._tolerance_s = webhook_tolerance_s
        self.payments: dict[str, Payment] = {}
        self.refunds: list[RefundResult] = []
        #: Signed ``(body, headers)`` webhooks, one per state change, in order.
        self.webhooks: list[tuple[bytes, dict[str, str]]] = []
        self._keys: dict[str, tuple[object, PaymentResult | RefundResult]] = {}
        self._failures: list[tuple[ProviderError, bool]] = []
        self._declines: list[str] = []
        self._holds = 0

    def _now(self) -> datetime:
        return datetime.fromtimestamp(int(self._clock()), UTC)

    def fail_next(self, error: ProviderError, *, after_effect: bool = False) -> None:
        """Make the next call raise ``error``, before its effect or (``after_effect``) after it."""
        self._failures.append((error, after_effect))

    def clear_faults(self) -> None:
        """Forget the failures and refund declines prepared and not yet used."""
        self._failures.clear()
        self._declines.clear()

    def _maybe_fail(self, *, after_effect: bool) -> None:
        if self._failures and self._failures[0][1] is after_effect:
            raise self._failures.pop(0)[0]

    def _replay(self, key: str, bound_to: object) -> PaymentResult | RefundResult | None:
        if key not in self._keys:
            return None
        bound, result = self._keys[key]
        if bound != bound_to:
            raise ProviderKeyConflict(f"idempotency key {key!r} reused with other parameters")
        return result

    def amount_rules(self, currency: str) -> AmountRule:
        """The rule a test set for ``currency``, else any positive amount in ISO units."""
        found = self.rules.get(currency)
        return found if found is not None else AmountRule.identity(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        """``amount`` in this fake's units (ISO minor units unless a rule says otherwise)."""
        return self.amount_rules(currency).to_provider(amount)

    def from_provider_units(self, amount: int, currency: str) -> int:
        """``amount`` of this fake's units in ISO minor units."""
        return self.amount_rules(currency).from_provider(amount)

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Pay with a test method; the same key and request replay the first answer.

        An amount its rules refuse is refused as a real provider would (nothing charged)."""
        self._maybe_fail(after_effect=False)
        replayed = self._replay(request.idempotency_key, fingerprint(request))
        if isinstance(replayed, PaymentResult):
            return replayed
        if request.method not in testcards.TEST_METHODS:
            raise ProviderRejected(f"no such payment method {request.method!r}")
        refusal = self.amount_rules(request.currency).refusal(request.amount)
        if refusal is not None:
            raise ProviderRejected(
                f"{self.name} cannot charge {request.amount} {request.currency}: {refusal.limit}"
            )
        ref = f"mem_pi_{secrets.token_hex(8)}"
        payment = Payment(request, first_result(ref, request, now=self._now()))
        self.payments[ref] = payment
        self._settled(payment)
        self._keys[request.idempotency_key] = (fingerprint(request), payment.result)
        self._maybe_fail(after_effect=True)
        return payment.result

    def _settled(self, payment: Payment) -> None:
        if payment.result.outcome is PaymentOutcome.SUCCEEDED:
            payment.charged_at = self._now()
        event_type = EVENT_TYPES[payment.result.outcome]
        self.webhooks.append(self.signed_webhook(event_type, payment=payment.result))

    def signed_webhook(
        self,
        event_type: str,
        *,
        timestamp: int | None = None,
        payment: PaymentResult | None = None,
        refund: RefundResult | None = None,
        charge: Charge | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed webhook about ``payment``, ``refund`` or ``charge``, as
        :meth:`parse_webhook` expects."""
        signed_at = int(time.time()) if timestamp is None else timestamp
        event_id = f"mem_evt_{secrets.token_hex(8)}"
        body = memory_webhooks.encode(
            event_id, event_type, created=signed_at, payment=payment, refund=refund, charge=charge
        )
        return body, memory_webhooks.sign(body, self.webhook_secret, timestamp=signed_at)

    def complete_action(self, provider_ref: str, *, approved: bool) -> PaymentResult:
        """The shopper passes (or fails) 3-D Secure for a payment awaiting it."""
        payment = self.payments[provider_ref]
        if payment.result.outcome is PaymentOutcome.ACTION_REQUIRED and not payment.canceled:
            payment.result = authenticated(payment.result, approved=approved)
            self._settled(payment)
        return payment.result

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """The payment's current result."""
        self._maybe_fail(after_effect=False)
        if provider_ref not in self.payments:
            raise ProviderRejected(f"no such payment {provider_ref!r}")
        return self.payments[provider_ref].result

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """Cancel a payment that has not succeeded; a succeeded one is returned unchanged."""
        self._maybe_fail(after_effect=False)
        payment = self.payments.get(provider_ref)
        if payment is None:
            raise ProviderRejected(f"no such payment {provider_ref!r}")
        if not payment.canceled and payment.result.outcome is not PaymentOutcome.SUCCEEDED:
            payment.canceled = True
            payment.result = cancelled(payment.result)
            self.webhooks.append(
                self.signed_webhook("payment_intent.canceled", payment=payment.result)
            )
        self._maybe_fail(after_effect=True)
        return payment.result

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """Every payment made for ``order_id``."""
        self._maybe_fail(after_effect=False)
        return [p.result for p in self.payments.values() if p.request.order_id == order_id]

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund all that is left (``amount=None``) or part of a succeeded payment.

        Like Stripe it sends ``refund.created`` (the Refund) and ``charge.refunded`` (the
        charge with its cumulative ``amount_refunded``, no list of refunds). A refund
        :meth:`decline_next_refund` prepared is created ``failed`` and gives nothing back.
        """
        self._maybe_fail(after_effect=False)
        meta = dict(metadata or {})
        replayed = self._replay(
            idempotency_key, (provider_ref, amount, tuple(sorted(meta.items())))
        )
        if isinstance(replayed, RefundResult):
            return self._refund_now(replayed)
        payment = self.payments.get(provider_ref)
        if payment is None or payment.result.outcome is not PaymentOutcome.SUCCEEDED:
            raise ProviderRejected(f"{provider_ref!r} has no succeeded charge to refund")
        left = payment.request.amount - payment.refunded
        wanted = left if amount is None else amount
        if not 0 < wanted <= left:
            raise ProviderRejected(f"cannot refund {wanted} of {left} left on {provider_ref!r}")
        ref = f"mem_re_{secrets.token_hex(8)}"
        currency = payment.request.currency
        declined = self._declines.pop(0) if self._declines else None
        status = "succeeded" if declined is None else "failed"
        if declined is None and self._holds:
            self._holds -= 1
            status = "pending"
        made = RefundResult(ref, provider_ref, wanted, currency, status, declined, meta)
        if declined is None:
            payment.refunded += wanted
        self.refunds.append(made)
        self._keys[idempotency_key] = ((provider_ref, amount, tuple(sorted(meta.items()))), made)
        self.webhooks.append(self.signed_webhook("refund.created", refund=made))
        if declined is None:
            self.webhooks.append(self.signed_webhook("charge.refunded", charge=charge_of(payment)))
        self._maybe_fail(after_effect=True)
        return made

    def _refund_now(self, made: RefundResult) -> RefundResult:
        """The refund as it stands now (a replay after it failed says ``failed``)."""
        return next((r for r in self.refunds if r.refund_ref == made.refund_ref), made)

    def decline_next_refund(self, reason: str = "insufficient_funds") -> None:
        """Create the next new refund ``failed`` with ``reason`` (nothing is given back)."""
        self._declines.append(reason)

    def hold_next_refund(self) -> None:
        """Create the next new refund ``pending`` (counted as refunded, as Stripe's are),
        until :meth:`settle_refund` ends it."""
        self._holds += 1

    def settle_refund(
        self, refund_ref: str, status: str, reason: str = "expired_or_canceled_card"
    ) -> RefundResult:
        """A ``pending`` refund ends ``succeeded`` or ``failed`` (its amount then held again),
        with a ``refund.updated`` webhook that a test may deliver or drop."""
        index, made = next((i, r) for i, r in enumerate(self.refunds) if r.refund_ref == refund_ref)
        if made.status != "pending":
            return made
        failed = status == "failed"
        ended = dataclasses.replace(made, status=status, failure_reason=reason if failed else None)
        self.refunds[index] = ended
        if failed:
            self.payments[made.provider_ref].refunded -= made.amount
        self.webhooks.append(self.signed_webhook("refund.updated", refund=ended))
        return ended

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """The refund as it stands, by its reference or else the key it was made with;
        ``None`` when no refund of ``provider_ref`` was made so."""
        self._maybe_fail(after_effect=False)
        if refund_ref is None:
            made = self._keys.get(idempotency_key, (None, None))[1]
            refund_ref = made.refund_ref if isinstance(made, RefundResult) else None
        found = [r for r in self.refunds if r.refund_ref == refund_ref]
        return found[0] if found and found[0].provider_ref == provider_ref else None

    def fail_refund(
        self, refund_ref: str, reason: str = "expired_or_canceled_card"
    ) -> RefundResult:
        """A succeeded refund fails later (as card refunds can): the money is held again."""
        index, made = next((i, r) for i, r in enumerate(self.refunds) if r.refund_ref == refund_ref)
        if made.status != "succeeded":
            return made
        failed = dataclasses.replace(made, status="failed", failure_reason=reason)
        self.refunds[index] = failed
        self.payments[made.provider_ref].refunded -= made.amount
        self.webhooks.append(self.signed_webhook("refund.updated", refund=failed))
        return failed

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Succeeded payments charged in ``[since, until)``."""
        self._maybe_fail(after_effect=False)
        return [
            charge_of(p)
            for p in self.payments.values()
            if p.charged_at is not None and since <= p.charged_at < until
        ]

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the HMAC signature and its age, then parse."""
        header = header_value(headers, SIGNATURE_HEADER)
        verify_signature(
            body, header, self.webhook_secret, tolerance_s=self._tolerance_s, now=time.time()
        )
        return self.decode_webhook(body)

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        """Parse a webhook verified on arrival, without checking its signature or age."""
        try:
            return memory_webhooks.decode(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidWebhook(f"malformed webhook body: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing to release."""
