"""The provider-neutral payment interface every adapter implements.

Results never raise for a business outcome: a decline is a :class:`PaymentResult` with
``outcome=FAILED``. Exceptions are for transport and protocol trouble, and their type
says whether repeating the same call with the same idempotency key is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

# the units vocabulary every adapter speaks, re-exported for them
from orderguard.domain.money import AmountLimit as AmountLimit
from orderguard.domain.money import AmountNotExact as AmountNotExact
from orderguard.domain.money import AmountRefusal as AmountRefusal
from orderguard.domain.money import AmountRule as AmountRule


class PaymentOutcome(StrEnum):
    """What a provider says about one payment."""

    #: The shopper was charged.
    SUCCEEDED = "succeeded"
    #: Definitely not charged (declined, cancelled, expired).
    FAILED = "failed"
    #: The shopper must authenticate at ``redirect_url`` (3-D Secure / SCA).
    ACTION_REQUIRED = "action_required"
    #: Accepted and still processing at the provider.
    PENDING = "pending"
    #: The provider's answer did not tell (only produced by callers, never by a provider).
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Create and confirm one payment attempt."""

    attempt_id: str
    order_id: str
    amount: int
    currency: str
    method: str
    return_url: str
    #: Derived from the attempt id; the same attempt always sends the same key.
    idempotency_key: str
    #: Always carries ``order_id`` and ``attempt_id``, plus a compact order snapshot.
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: When the payment expires: the moment orderguard treats the shopper's step as
    #: abandoned and cancels it. A provider whose payments expire on their own (a wallet's
    #: ``time_expire``) closes the payment then too; one without (Stripe) ignores it.
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """A provider's view of one payment."""

    outcome: PaymentOutcome
    provider_ref: str | None
    amount: int | None = None
    currency: str | None = None
    decline_code: str | None = None
    #: For FAILED: whether the shopper may try again with another method.
    retry_with_other_method: bool = False
    redirect_url: str | None = None
    order_id: str | None = None
    attempt_id: str | None = None
    created_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Charge:
    """A successful charge at a provider, as listed for the orphan and duplicate sweeps."""

    provider_ref: str
    amount: int
    currency: str
    created_at: datetime
    amount_refunded: int = 0
    order_id: str | None = None
    attempt_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund the provider accepted."""

    refund_ref: str
    provider_ref: str
    amount: int
    currency: str
    #: ``succeeded``, ``pending`` or ``failed`` as the provider reports it.
    status: str
    #: Why a ``failed`` refund failed, as the provider words it (e.g. ``expired_or_canceled_card``).
    failure_reason: str | None = None
    #: What the refund was created with; orderguard's refunds carry ``refund_id``.
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified webhook, parsed into provider-neutral terms."""

    event_id: str
    type: str
    created_at: datetime
    #: The payment the event is about, when it is about one.
    payment: PaymentResult | None
    #: The provider's object of a refund event, when it is one.
    refund: RefundResult | None = None
    #: The charge of a ``charge.refunded`` event: its cumulative ``amount_refunded``.
    charge: Charge | None = None


class ProviderError(Exception):
    """A provider call failed for a reason other than the payment's own outcome.

    ``safe_to_retry`` overrides the class's own answer when the provider said it outright
    (Stripe's ``Stripe-Should-Retry`` response header).
    """

    #: Whether the same call with the same idempotency key may be repeated safely.
    safe_to_retry: bool = False

    def __init__(self, message: str = "", *, safe_to_retry: bool | None = None) -> None:
        super().__init__(message)
        if safe_to_retry is not None:
            self.safe_to_retry = safe_to_retry


class ProviderUnavailable(ProviderError):
    """The request never reached the provider (connection refused, DNS, circuit open)."""

    safe_to_retry = True


class ProviderRateLimited(ProviderError):
    """The provider refused the request for now (HTTP 429)."""

    safe_to_retry = True


class ProviderBusy(ProviderError):
    """Another request with the same idempotency key is in progress (HTTP 409).

    That request may charge, so the outcome is unknown until it finishes; repeating with
    the same key afterwards returns its result.
    """

    safe_to_retry = True


class ProviderServerError(ProviderError):
    """The provider answered 5xx; with an idempotency key a repeat is safe."""

    safe_to_retry = True


class ProviderOutcomeUnknown(ProviderError):
    """The request was sent and its answer was lost (timeout, reset); only the provider knows."""


class ProviderKeyConflict(ProviderError):
    """The provider refused the idempotency key: it was first used for another request.

    That first request was ours and may have charged, so the outcome is unknown until the
    provider is asked; repeating the call gets the same refusal, and a new key could charge
    twice.
    """


class ProviderRejected(ProviderError):
    """The provider refused the request as invalid (4xx other than 429): a bug, not a blip."""


class UnreadableAmount(ProviderOutcomeUnknown):
    """The provider reported an amount that has no exact value in ISO 4217 minor units.

    What was charged cannot be compared with the order, so the outcome counts as unknown
    (never as a success or a failure) until a person looks.
    """


class UnchargeableAmount(ProviderRejected):
    """The amount cannot be written in the provider's units; nothing was sent."""


class InvalidWebhook(ProviderError):
    """The webhook's signature or timestamp does not verify."""


@runtime_checkable
class PaymentProvider(Protocol):
    """What every adapter (Stripe, the in-memory fake, ...) offers."""

    #: Stable name stored on payment attempts, e.g. ``stripe`` or ``sandbox-b``.
    name: str

    def amount_rules(self, currency: str) -> AmountRule:
        """Which amounts (ISO minor units) this provider charges in ``currency``: minimum,
        maximum, granularity, whether at all, and how its units relate to ISO 4217's."""
        ...

    def to_provider_units(self, amount: int, currency: str) -> int:
        """``amount`` ISO minor units in this provider's units; :class:`AmountNotExact`
        when it cannot be written exactly (it is then never charged)."""
        ...

    def from_provider_units(self, amount: int, currency: str) -> int:
        """``amount`` in this provider's units as ISO minor units; :class:`AmountNotExact`
        when it has no exact ISO value."""
        ...

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Create and confirm a payment, idempotently on ``request.idempotency_key``."""
        ...

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """The provider's current view of one payment."""
        ...

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """Every payment the provider holds whose metadata names ``order_id``."""
        ...

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """Cancel a payment that has not succeeded (e.g. awaiting authentication).

        Returns the payment as it now stands: FAILED when cancelled, SUCCEEDED when it had
        already succeeded (then nothing was cancelled; this is an answer, not an error).
        Idempotent: cancelling a cancelled payment returns it FAILED again. Any other
        outcome (e.g. PENDING while the provider is still processing and refuses to
        cancel) means it was *not* cancelled. An unknown ``provider_ref`` raises
        :class:`ProviderRejected`.
        """
        ...

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund all (``amount=None``) or part of a payment, idempotently; ``metadata``
        (e.g. orderguard's ``refund_id``) is stored on the refund and comes back in its
        webhooks. ``currency`` is the payment's (ISO code), when the caller knows it: a
        provider whose units depend on it then needs no call to learn it."""
        ...

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """The provider's current view of one refund of ``provider_ref``, found the way
        :meth:`refund` named it: ``refund_ref`` (the provider's id) when its answer came
        back, else ``idempotency_key`` / ``metadata`` (orderguard's ``refund_id``).

        ``status`` is ``succeeded``, ``pending`` or ``failed``; ``None`` means the provider
        holds no such refund (the request never reached it). Raises :class:`ProviderError`
        when the answer does not tell (timeout, 5xx, a system error): the refund's outcome
        is then unknown, never failed.
        """
        ...

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Every successful charge created in ``[since, until)``."""
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify signature and timestamp, then parse; raises :class:`InvalidWebhook`."""
        ...

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        """Parse a webhook that was verified when it arrived (stored, maybe old): no checks.

        Raises :class:`InvalidWebhook` when the body is malformed.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class DelegatingProvider:
    """A :class:`PaymentProvider` that passes every call to ``inner`` unchanged, under the
    same name (attempts are stored under the wrapped provider's name).

    The base of every wrapper (retries, metrics, the demo's planted defects): each overrides
    only the calls it changes, so a method added to the protocol is forwarded by every
    wrapper at once (``tests/unit/test_delegating_provider.py`` holds it to that).
    """

    def __init__(self, inner: PaymentProvider) -> None:
        self.inner = inner
        self.name = inner.name

    def amount_rules(self, currency: str) -> AmountRule:
        return self.inner.amount_rules(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        return self.inner.to_provider_units(amount, currency)

    def from_provider_units(self, amount: int, currency: str) -> int:
        return self.inner.from_provider_units(amount, currency)

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        return await self.inner.create_payment(request)

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        return await self.inner.retrieve_payment(provider_ref)

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return await self.inner.find_payments(order_id)

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        return await self.inner.cancel_payment(provider_ref)

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        return await self.inner.refund(
            provider_ref,
            amount=amount,
            idempotency_key=idempotency_key,
            metadata=metadata,
            currency=currency,
        )

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        return await self.inner.retrieve_refund(
            provider_ref, idempotency_key=idempotency_key, metadata=metadata, refund_ref=refund_ref
        )

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        return await self.inner.list_successful_charges(since, until)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return self.inner.parse_webhook(body, headers)

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        return self.inner.decode_webhook(body)

    async def aclose(self) -> None:
        await self.inner.aclose()
