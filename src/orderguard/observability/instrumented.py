"""Provider calls and circuit breakers, counted and timed for ``/metrics``.

:class:`InstrumentedProvider` wraps any ``PaymentProvider`` (bootstrap puts it under the
retries, so each attempt counts); :class:`ObservedBreaker` is a ``CircuitBreaker`` that
publishes its state whenever it changes or is consulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from orderguard.observability.metrics import CIRCUIT_STATE, PROVIDER_CALLS, PROVIDER_LATENCY
from orderguard.providers.base import (
    Charge,
    ChargeRequest,
    DelegatingProvider,
    InvalidWebhook,
    PaymentResult,
    ProviderBusy,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
    RefundResult,
)
from orderguard.providers.breaker import BreakerState, CircuitBreaker

T = TypeVar("T")
#: The ``outcome`` label of each provider error.
_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (ProviderUnavailable, "unavailable"),
    (ProviderRateLimited, "rate_limited"),
    (ProviderBusy, "busy"),
    (ProviderServerError, "server_error"),
    (ProviderOutcomeUnknown, "outcome_unknown"),
    (ProviderKeyConflict, "key_conflict"),
    (ProviderRejected, "rejected"),
    (InvalidWebhook, "invalid_webhook"),
)
#: The gauge value of each breaker state.
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def outcome_of(exc: BaseException) -> str:
    """The ``outcome`` label for a call that raised ``exc`` (``timeout``: the caller's time
    budget ran out and cancelled it)."""
    if isinstance(exc, TimeoutError | asyncio.CancelledError):
        return "timeout"
    for kind, label in _OUTCOMES:
        if isinstance(exc, kind):
            return label
    return "error"


class InstrumentedProvider(DelegatingProvider):
    """A ``PaymentProvider`` that counts and times every call of the one it wraps that goes
    out to the provider; amount rules, unit conversions and webhook parsing (local work)
    and closing pass through uncounted."""

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started, outcome = time.perf_counter(), "ok"
        try:
            return await call()
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            labels = (self.name, operation, outcome)
            PROVIDER_CALLS.labels(*labels).inc()
            PROVIDER_LATENCY.labels(*labels).observe(time.perf_counter() - started)

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Counted ``create_payment``."""
        return await self._call("create_payment", lambda: self.inner.create_payment(request))

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """Counted ``retrieve_payment``."""
        return await self._call(
            "retrieve_payment", lambda: self.inner.retrieve_payment(provider_ref)
        )

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """Counted ``find_payments``."""
        return await self._call("find_payments", lambda: self.inner.find_payments(order_id))

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """Counted ``cancel_payment``."""
        return await self._call("cancel_payment", lambda: self.inner.cancel_payment(provider_ref))

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Counted ``refund``."""
        return await self._call(
            "refund",
            lambda: self.inner.refund(
                provider_ref,
                amount=amount,
                idempotency_key=idempotency_key,
                metadata=metadata,
                currency=currency,
            ),
        )

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """Counted ``retrieve_refund``."""
        return await self._call(
            "retrieve_refund",
            lambda: self.inner.retrieve_refund(
                provider_ref,
                idempotency_key=idempotency_key,
                metadata=metadata,
                refund_ref=refund_ref,
            ),
        )

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Counted ``list_successful_charges``."""
        return await self._call(
            "list_successful_charges", lambda: self.inner.list_successful_charges(since, until)
        )


class ObservedBreaker(CircuitBreaker):
    """A circuit breaker that keeps ``orderguard_provider_circuit_state`` up to date."""

    def __init__(
        self,
        provider: str,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(failure_threshold=failure_threshold, cool_down_s=cool_down_s, clock=clock)
        self.provider = provider
        self.publish()

    def publish(self) -> BreakerState:
        """Set the gauge to the current state; return it."""
        state = self.state
        CIRCUIT_STATE.labels(self.provider).set(BREAKER_VALUES[state])
        return state

    def allow(self) -> bool:
        allowed = super().allow()
        self.publish()
        return allowed

    def record_success(self) -> None:
        super().record_success()
        self.publish()

    def record_failure(self) -> None:
        super().record_failure()
        self.publish()


#: Seconds between two publications of the breakers' states (:func:`publish_breakers`).
PUBLISH_EVERY_S = 1.0


async def publish_breakers(
    breakers: Iterable[object], stop: asyncio.Event, *, every_s: float = PUBLISH_EVERY_S
) -> None:
    """Publish the state of each :class:`ObservedBreaker` of ``breakers`` every ``every_s``
    seconds until ``stop``: an open circuit turns half-open with time, not only on a call,
    and a process that gets no call (one of ``serve --processes N``, each with breakers of
    its own) would otherwise show it open, and page, for ever."""
    observed = [b for b in breakers if isinstance(b, ObservedBreaker)]
    while not stop.is_set():
        for breaker in observed:
            breaker.publish()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
