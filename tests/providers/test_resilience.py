"""Retry only what is safe to repeat; the breaker opens, half-opens and closes on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.providers.base import (
    PaymentOutcome,
    PaymentResult,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import (
    BreakerState,
    CircuitBreaker,
    RetryingProvider,
    RetryPolicy,
    is_transport_failure,
    should_retry,
)
from tests.providers.conftest import charge_request


class Sleeps(list[float]):
    """A fake ``asyncio.sleep`` that records the waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (ProviderUnavailable(), True),
        (ProviderRateLimited(), True),
        (ProviderServerError(), True),
        (ProviderOutcomeUnknown(), False),
        (ProviderRejected(), False),
        (ValueError(), False),
    ],
)
def test_only_errors_that_say_so_are_retried(error: Exception, retry: bool) -> None:
    assert should_retry(error) is retry


def test_transport_failures_are_what_count_against_a_provider() -> None:
    assert is_transport_failure(ProviderOutcomeUnknown())
    assert is_transport_failure(ProviderUnavailable())
    assert not is_transport_failure(ProviderRejected())
    assert not is_transport_failure(ProviderRateLimited())


def _retrying(inner: InMemoryProvider, **policy: float) -> tuple[RetryingProvider, Sleeps]:
    sleeps = Sleeps()
    settings = {"attempts": 4, "initial_s": 0.5, "max_wait_s": 1.0, **policy}
    return RetryingProvider(inner, policy=RetryPolicy(**settings), sleep=sleeps), sleeps  # type: ignore[arg-type]


async def test_transient_errors_are_retried_until_the_charge_goes_through() -> None:
    inner = InMemoryProvider()
    inner.fail_next(ProviderServerError("boom"))
    inner.fail_next(ProviderRateLimited("slow down"))
    provider, sleeps = _retrying(inner)
    result = await provider.create_payment(charge_request())
    assert result.outcome is PaymentOutcome.SUCCEEDED
    assert len(sleeps) == 2
    assert all(0 <= s <= 1.0 for s in sleeps)
    assert len(inner.payments) == 1


async def test_an_unknown_outcome_is_never_retried() -> None:
    inner = InMemoryProvider()
    inner.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    provider, sleeps = _retrying(inner)
    with pytest.raises(ProviderOutcomeUnknown):
        await provider.create_payment(charge_request())
    assert sleeps == []
    assert len(inner.payments) == 1


async def test_a_rejected_request_is_not_retried() -> None:
    provider, sleeps = _retrying(InMemoryProvider())
    with pytest.raises(ProviderRejected):
        await provider.retrieve_payment("pi_unknown")
    assert sleeps == []


async def test_retries_stop_after_the_attempt_limit() -> None:
    inner = InMemoryProvider()
    for _ in range(6):
        inner.fail_next(ProviderUnavailable("down"))
    provider, sleeps = _retrying(inner, attempts=3)
    with pytest.raises(ProviderUnavailable):
        await provider.find_payments("ord_1")
    assert len(sleeps) == 2
    assert len(inner._failures) == 3  # three of the six failures were consumed, no more


async def test_retries_stop_at_the_deadline() -> None:
    inner = InMemoryProvider()
    for _ in range(3):
        inner.fail_next(ProviderServerError("down"))
    provider, sleeps = _retrying(inner, deadline_s=0.0)
    with pytest.raises(ProviderServerError):
        await provider.refund("pi_1", amount=None, idempotency_key="r")
    assert sleeps == []


async def test_each_wait_may_be_twice_the_last_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # full jitter: a wait is random in [0, initial_s * 2**(n-1)], capped; here, at its top
    monkeypatch.setattr("random.uniform", lambda low, high: high)
    inner = InMemoryProvider()
    for _ in range(5):
        inner.fail_next(ProviderUnavailable("down"))
    provider, sleeps = _retrying(inner, attempts=5, initial_s=0.5, max_wait_s=3.0)
    with pytest.raises(ProviderUnavailable):
        await provider.create_payment(charge_request())
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


async def test_the_deadline_counts_from_the_first_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.uniform", lambda low, high: high)
    now = [0.0]

    class Waits(Sleeps):
        async def __call__(self, seconds: float) -> None:
            self.append(seconds)
            now[0] += seconds  # waiting is what moves the clock here

    inner = InMemoryProvider()
    for _ in range(4):
        inner.fail_next(ProviderUnavailable("down"))
    waits = Waits()
    provider = RetryingProvider(
        inner,
        policy=RetryPolicy(attempts=4, initial_s=0.5, max_wait_s=5.0, deadline_s=1.2),
        sleep=waits,
        clock=lambda: now[0],
    )
    with pytest.raises(ProviderUnavailable):
        await provider.find_payments("ord_1")
    # attempt 1 at 0 s, attempt 2 at 0.5 s, attempt 3 at 1.5 s: past 1.2 s, no fourth
    assert waits == [0.5, 1.0]
    assert len(inner._failures) == 1  # one of the four failures was never reached


async def test_a_first_attempt_that_outlasts_the_deadline_is_not_retried() -> None:
    class Slow(InMemoryProvider):
        async def find_payments(self, order_id: str) -> list[PaymentResult]:
            await asyncio.sleep(0.05)
            raise ProviderUnavailable("down, slowly")

    provider, sleeps = _retrying(Slow(), deadline_s=0.04)
    with pytest.raises(ProviderUnavailable):
        await provider.find_payments("ord_1")
    assert sleeps == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


def test_the_breaker_opens_after_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=30, clock=FakeClock())
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_success()
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_after_the_cool_down_one_probe_goes_through_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=30, clock=clock)
    breaker.record_failure()
    clock.now += 29
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert breaker.consecutive_failures == 0


def test_a_failed_probe_opens_the_breaker_again_for_a_full_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=10, clock=clock)
    _fail(breaker, 2)
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_probe_that_never_reports_back_expires_after_the_cool_down() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 10.0
    assert breaker.allow() is True  # the probe goes out ... and is never heard of again
    assert breaker.allow() is False
    now[0] = 19.9
    assert breaker.allow() is False
    now[0] = 20.0
    assert breaker.allow() is True


async def test_a_cancel_is_retried_past_safe_errors_and_signals_once() -> None:
    inner = InMemoryProvider()
    pending = await inner.create_payment(charge_request(method="pm_card_authenticationRequired"))
    assert pending.provider_ref is not None
    inner.fail_next(ProviderUnavailable("down"))
    inner.fail_next(ProviderServerError("boom"), after_effect=True)
    provider, sleeps = _retrying(inner)
    result = await provider.cancel_payment(pending.provider_ref)
    assert result.outcome is PaymentOutcome.FAILED
    assert len(sleeps) == 2
    types = [inner.parse_webhook(body, headers).type for body, headers in inner.webhooks]
    assert types == ["payment_intent.requires_action", "payment_intent.canceled"]
    assert inner.complete_action(pending.provider_ref, approved=True) == result
    assert inner.payments[pending.provider_ref].charged_at is None


async def test_a_cancel_whose_outcome_is_unknown_is_not_retried() -> None:
    inner = InMemoryProvider()
    pending = await inner.create_payment(charge_request(method="pm_card_authenticationRequired"))
    assert pending.provider_ref is not None
    inner.fail_next(ProviderOutcomeUnknown("lost"), after_effect=True)
    provider, sleeps = _retrying(inner)
    with pytest.raises(ProviderOutcomeUnknown):
        await provider.cancel_payment(pending.provider_ref)
    assert sleeps == []
