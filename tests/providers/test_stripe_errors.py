"""What Stripe's own error answers mean for a charge, through the real SDK and the sandbox.

An idempotency error is not a rejection: the request first sent with that key was ours and
may have charged, so the attempt's outcome is unknown (asked later, never re-sent with a new
key). ``Stripe-Should-Retry`` overrides the status: ``true`` makes an error safe to repeat
with the same key, ``false`` makes none; without it, the status decides as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderguard.domain.states import AttemptState
from orderguard.providers.base import (
    PaymentOutcome,
    ProviderBusy,
    ProviderError,
    ProviderKeyConflict,
    ProviderRejected,
    ProviderServerError,
)
from orderguard.providers.resilience import RetryingProvider, RetryPolicy
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.services.payments import failure_outcome
from tests.providers.conftest import charge_request
from tests.providers.sandbox_client import charges_for, fault_kinds, ledger, script_answer

#: Stripe's error type for a request it refuses as invalid.
INVALID = "invalid_request_error"
#: Retries as in production, without the waiting.
QUICK = RetryPolicy(attempts=4, initial_s=0.001, max_wait_s=0.002, deadline_s=5.0)


@pytest.fixture
async def retrying(stripe_provider: StripeProvider) -> AsyncIterator[RetryingProvider]:
    """The Stripe adapter behind our retry layer, as ``bootstrap`` wires it."""
    yield RetryingProvider(stripe_provider, policy=QUICK)


async def test_a_key_first_used_with_other_parameters_leaves_the_charge_unknown_not_failed(
    stripe_provider: StripeProvider, sandbox_url: str
) -> None:
    first = charge_request(amount=2599)
    paid = await stripe_provider.create_payment(first)
    assert paid.outcome is PaymentOutcome.SUCCEEDED
    changed = charge_request(
        amount=2599,
        order_id=first.order_id,
        attempt_id=first.attempt_id,
        metadata={"items": "3"},  # the snapshot moved on; the key is the attempt's
    )

    with pytest.raises(ProviderKeyConflict) as refused:
        await stripe_provider.create_payment(changed)

    assert "idempotency" in str(refused.value).lower()
    outcome = failure_outcome(refused.value)
    assert outcome.state is AttemptState.UNKNOWN  # the shopper may well have been charged
    assert outcome.decline_code is None
    assert len(await charges_for(sandbox_url, first.order_id)) == 1


async def test_an_idempotency_error_is_not_retried_and_no_new_key_is_tried(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(sandbox_url, status=400, type="idempotency_error", after=True)
    request = charge_request()

    with pytest.raises(ProviderKeyConflict):
        await retrying.create_payment(request)

    book = await ledger(sandbox_url)
    assert await fault_kinds(sandbox_url) == ["scripted"]  # asked once: repeating cannot help
    assert len(book["payment_intents"]) == 1  # charged under the one key it was given
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_a_key_in_use_by_a_request_still_running_is_busy_and_waited_for(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(
        sandbox_url, status=409, type="idempotency_error", code="idempotency_key_in_use"
    )
    request = charge_request()

    result = await retrying.create_payment(request)

    assert result.outcome is PaymentOutcome.SUCCEEDED  # repeated with the same key once free
    assert await fault_kinds(sandbox_url) == ["scripted"]
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_should_retry_true_makes_a_refusal_safe_to_repeat_with_the_same_key(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(
        sandbox_url,
        status=400,
        type=INVALID,
        code="lock_timeout",
        should_retry="true",
    )
    request = charge_request()

    result = await retrying.create_payment(request)

    assert result.outcome is PaymentOutcome.SUCCEEDED
    assert await fault_kinds(sandbox_url) == ["scripted"]
    [intent] = (await ledger(sandbox_url))["payment_intents"]
    assert intent["id"] == result.provider_ref  # one intent: the repeat carried the same key
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 409, "type": INVALID, "code": "idempotency_key_in_use"}, ProviderBusy),
        ({"status": 400, "type": INVALID, "should_retry": "true"}, ProviderRejected),
    ],
)
async def test_an_answer_safe_to_repeat_on_every_try_ends_unknown_never_failed(
    retrying: RetryingProvider,
    sandbox_url: str,
    answer: dict[str, object],
    error: type[ProviderError],
) -> None:
    await script_answer(sandbox_url, **answer, times=QUICK.attempts)
    with pytest.raises(error) as given_up:
        await retrying.create_payment(charge_request())
    assert given_up.value.safe_to_retry is True
    assert await fault_kinds(sandbox_url) == ["scripted"] * QUICK.attempts
    assert failure_outcome(given_up.value).state is AttemptState.UNKNOWN


async def test_should_retry_false_stops_a_server_error_from_being_repeated(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(sandbox_url, status=500, type="api_error", should_retry="false")
    request = charge_request()

    with pytest.raises(ProviderServerError) as failed:
        await retrying.create_payment(request)

    assert failed.value.safe_to_retry is False
    assert await fault_kinds(sandbox_url) == ["scripted"]  # asked once, as Stripe said
    assert (await ledger(sandbox_url))["payment_intents"] == []
    assert failure_outcome(failed.value).state is AttemptState.UNKNOWN  # asked later, not guessed


async def test_without_the_header_a_server_error_is_still_repeated(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(sandbox_url, status=500, type="api_error")
    request = charge_request()

    result = await retrying.create_payment(request)

    assert result.outcome is PaymentOutcome.SUCCEEDED
    assert await fault_kinds(sandbox_url) == ["scripted"]
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_without_the_header_a_refusal_is_still_final(
    retrying: RetryingProvider, sandbox_url: str
) -> None:
    await script_answer(sandbox_url, status=400, type=INVALID, code="parameter_invalid")
    with pytest.raises(ProviderRejected) as refused:
        await retrying.create_payment(charge_request())
    assert refused.value.safe_to_retry is False
    assert (await ledger(sandbox_url))["payment_intents"] == []
    assert failure_outcome(refused.value).state is AttemptState.FAILED


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "type": "api_error"},
        {"status": 500, "type": "api_error", "should_retry": "maybe"},
        {"status": 500, "type": "api_error", "colour": "red"},
    ],
)
async def test_the_sandbox_refuses_a_malformed_scripted_answer(
    sandbox_url: str, answer: dict[str, object]
) -> None:
    with pytest.raises(Exception, match="400"):
        await script_answer(sandbox_url, **answer)
