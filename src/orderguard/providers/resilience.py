"""Retries with backoff and jitter for transient errors only, and a circuit breaker.

Policies are pure; the retrying wrapper is itself a ``PaymentProvider``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from orderguard.providers.base import (
    Charge,
    ChargeRequest,
    DelegatingProvider,
    PaymentProvider,
    PaymentResult,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderServerError,
    ProviderUnavailable,
    RefundResult,
)
from orderguard.providers.breaker import BreakerState, CircuitBreaker

T = TypeVar("T")


def should_retry(exc: BaseException) -> bool:
    """Whether repeating the call is safe: only errors that say so (never an unknown outcome)."""
    return isinstance(exc, ProviderError) and exc.safe_to_retry


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the provider is unwell (counts towards opening a breaker)."""
    return isinstance(exc, ProviderUnavailable | ProviderServerError | ProviderOutcomeUnknown)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry: full-jitter exponential backoff, capped, within a deadline."""

    #: Attempts in all, the first included.
    attempts: int = 4
    #: Scale of the first wait in seconds (the wait is random in ``[0, initial_s * 2**n]``).
    initial_s: float = 0.2
    #: No single wait is longer than this.
    max_wait_s: float = 5.0
    #: No retry starts after this many seconds since the first attempt.
    deadline_s: float = 20.0


class _PastDeadline(stop_base):
    """Stop once ``deadline_s`` seconds have passed on ``clock`` since ``started``: the
    call's first attempt, which ran before tenacity started counting."""

    def __init__(self, clock: Callable[[], float], started: float, deadline_s: float) -> None:
        self.clock, self.started, self.deadline_s = clock, started, deadline_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() - self.started >= self.deadline_s


class RetryingProvider(DelegatingProvider):
    """Wraps a provider; safe-to-retry errors are retried under a :class:`RetryPolicy`.

    Only calls that go out to the provider are retried; amount rules, unit conversions and
    webhook parsing (local work) and closing pass straight through.
    """

    def __init__(
        self,
        inner: PaymentProvider,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, repeated under the policy while it fails with errors safe to retry.

        The first attempt runs on its own: almost every call is answered by it, and
        tenacity's machinery costs about 36 µs a call (2 % of a paid order's CPU); it takes
        over only once a retry is due, going on with the same waits and limits.
        """
        policy = self.policy
        started = self._clock()
        try:
            return await call()
        except Exception as exc:
            if (
                not should_retry(exc)
                or policy.attempts <= 1
                or self._clock() - started >= policy.deadline_s
            ):
                raise
        await self._sleep(random.uniform(0, min(policy.max_wait_s, policy.initial_s)))

        retrying = AsyncRetrying(
            retry=retry_if_exception(should_retry),
            # tenacity's attempt n is the call's attempt n + 1: its waits go on from there
            wait=wait_random_exponential(multiplier=2 * policy.initial_s, max=policy.max_wait_s),
            stop=stop_after_attempt(policy.attempts - 1)
            | _PastDeadline(self._clock, started, policy.deadline_s),
            sleep=self._sleep,
            reraise=True,
        )

        async def attempt() -> T:
            return await call()

        return await retrying(attempt)

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Create, retrying safe errors (the idempotency key makes repeats harmless)."""
        return await self._retry(lambda: self.inner.create_payment(request))

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """Retrieve, retrying safe errors."""
        return await self._retry(lambda: self.inner.retrieve_payment(provider_ref))

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """Search, retrying safe errors."""
        return await self._retry(lambda: self.inner.find_payments(order_id))

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """Cancel, retrying safe errors (cancelling twice answers the same)."""
        return await self._retry(lambda: self.inner.cancel_payment(provider_ref))

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund, retrying safe errors."""
        return await self._retry(
            lambda: self.inner.refund(
                provider_ref,
                amount=amount,
                idempotency_key=idempotency_key,
                metadata=metadata,
                currency=currency,
            )
        )

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """Look a refund up, retrying safe errors (a read)."""
        return await self._retry(
            lambda: self.inner.retrieve_refund(
                provider_ref,
                idempotency_key=idempotency_key,
                metadata=metadata,
                refund_ref=refund_ref,
            )
        )

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """List, retrying safe errors."""
        return await self._retry(lambda: self.inner.list_successful_charges(since, until))


__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "RetryPolicy",
    "RetryingProvider",
    "is_transport_failure",
    "should_retry",
]
