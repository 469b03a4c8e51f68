"""The provider contract: the same tests, unchanged, against every implementation.

``harness`` is parametrized over the sandbox (real HTTP through ``StripeProvider``) and the
in-memory fake. The ledger counts come from each implementation's own books, not from the
answers under test.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from orderguard.providers.base import (
    InvalidWebhook,
    PaymentOutcome,
    ProviderKeyConflict,
    ProviderRejected,
)
from tests.providers.conftest import charge_request
from tests.providers.harness import MemoryHarness, SandboxHarness

Harness = SandboxHarness | MemoryHarness


async def test_a_good_card_is_charged_and_carries_the_order(harness: Harness) -> None:
    request = charge_request(amount=4200)
    result = await harness.provider.create_payment(request)
    assert result.outcome is PaymentOutcome.SUCCEEDED
    assert (result.amount, result.currency) == (4200, "EUR")
    assert (result.order_id, result.attempt_id) == (request.order_id, request.attempt_id)
    assert result.metadata["items"] == "2"
    assert await harness.successful_charges(request.order_id) == 1


async def test_a_decline_is_a_failed_result_with_its_code_not_an_error(harness: Harness) -> None:
    request = charge_request(method="pm_card_chargeDeclined")
    result = await harness.provider.create_payment(request)
    assert result.outcome is PaymentOutcome.FAILED
    assert result.decline_code == "generic_decline"
    assert result.retry_with_other_method is True
    assert result.provider_ref is not None
    assert await harness.successful_charges(request.order_id) == 0


async def test_an_approved_3ds_challenge_ends_in_success(harness: Harness) -> None:
    request = charge_request(method="pm_card_authenticationRequired")
    first = await harness.provider.create_payment(request)
    assert first.outcome is PaymentOutcome.ACTION_REQUIRED
    assert first.redirect_url and first.provider_ref and first.provider_ref in first.redirect_url
    assert await harness.successful_charges(request.order_id) == 0
    await harness.complete_action(first.provider_ref, approved=True)
    after = await harness.provider.retrieve_payment(first.provider_ref)
    assert after.outcome is PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 1


async def test_a_refused_3ds_challenge_fails_and_invites_another_method(harness: Harness) -> None:
    request = charge_request(method="pm_card_authenticationRequired")
    first = await harness.provider.create_payment(request)
    assert first.provider_ref is not None
    await harness.complete_action(first.provider_ref, approved=False)
    after = await harness.provider.retrieve_payment(first.provider_ref)
    assert after.outcome is PaymentOutcome.FAILED
    assert after.retry_with_other_method is True
    assert await harness.successful_charges(request.order_id) == 0


async def test_the_same_idempotency_key_twice_charges_once(harness: Harness) -> None:
    request = charge_request()
    first = await harness.provider.create_payment(request)
    second = await harness.provider.create_payment(request)
    assert second.provider_ref == first.provider_ref
    assert await harness.successful_charges(request.order_id) == 1


async def test_the_same_key_with_another_amount_is_a_key_conflict_not_a_rejection(
    harness: Harness,
) -> None:
    request = charge_request(amount=100)
    await harness.provider.create_payment(request)
    altered = charge_request(amount=999, order_id=request.order_id, attempt_id=request.attempt_id)
    with pytest.raises(ProviderKeyConflict) as refused:
        await harness.provider.create_payment(altered)
    assert not isinstance(refused.value, ProviderRejected)  # the first request may have charged
    assert refused.value.safe_to_retry is False  # repeating gets the same refusal
    assert await harness.successful_charges(request.order_id) == 1


async def test_retrieve_returns_the_payment_and_refuses_an_unknown_one(harness: Harness) -> None:
    made = await harness.provider.create_payment(charge_request(amount=777))
    assert made.provider_ref is not None
    seen = await harness.provider.retrieve_payment(made.provider_ref)
    assert (seen.provider_ref, seen.outcome, seen.amount) == (made.provider_ref, made.outcome, 777)
    with pytest.raises(ProviderRejected):
        await harness.provider.retrieve_payment("pi_does_not_exist")


async def test_find_payments_returns_every_attempt_of_one_order_only(harness: Harness) -> None:
    declined = await harness.provider.create_payment(
        charge_request(order_id="ord_find'me", method="pm_card_chargeDeclined")
    )
    paid = await harness.provider.create_payment(charge_request(order_id="ord_find'me"))
    await harness.provider.create_payment(charge_request(order_id="ord_someone_else"))
    found = await harness.provider.find_payments("ord_find'me")
    assert {r.provider_ref for r in found} == {declined.provider_ref, paid.provider_ref}
    assert {r.outcome for r in found} == {PaymentOutcome.FAILED, PaymentOutcome.SUCCEEDED}
    assert await harness.provider.find_payments("ord_nobody") == []


async def test_refunds_partial_then_full_each_idempotent(harness: Harness) -> None:
    paid = await harness.provider.create_payment(charge_request(amount=1000))
    ref = paid.provider_ref
    assert ref is not None
    part = await harness.provider.refund(ref, amount=300, idempotency_key=f"{ref}-r1")
    again = await harness.provider.refund(ref, amount=300, idempotency_key=f"{ref}-r1")
    assert (part.amount, part.provider_ref, part.currency) == (300, ref, "EUR")
    assert again.refund_ref == part.refund_ref
    rest = await harness.provider.refund(ref, amount=None, idempotency_key=f"{ref}-r2")
    assert rest.amount == 700 and rest.refund_ref != part.refund_ref
    with pytest.raises(ProviderRejected):
        await harness.provider.refund(ref, amount=None, idempotency_key=f"{ref}-r3")
    since = datetime.fromtimestamp(harness.clock.now - 60, UTC)
    charges = await harness.provider.list_successful_charges(
        since, datetime.now(UTC).replace(year=2100)
    )
    assert [(c.provider_ref, c.amount_refunded) for c in charges] == [(ref, 1000)]


async def test_a_refund_keeps_the_metadata_it_was_made_with(harness: Harness) -> None:
    """orderguard finds its own refund record in the provider's refund events by this."""
    paid = await harness.provider.create_payment(charge_request(amount=1000))
    assert paid.provider_ref is not None
    made = await harness.provider.refund(
        paid.provider_ref, amount=400, idempotency_key="r-meta", metadata={"refund_id": "rfd_1"}
    )
    assert dict(made.metadata) == {"refund_id": "rfd_1"}


async def test_a_refund_of_a_declined_payment_is_refused(harness: Harness) -> None:
    declined = await harness.provider.create_payment(
        charge_request(method="pm_card_chargeDeclined")
    )
    assert declined.provider_ref is not None
    with pytest.raises(ProviderRejected):
        await harness.provider.refund(declined.provider_ref, amount=None, idempotency_key="rx")


async def test_successful_charges_are_listed_by_creation_window(harness: Harness) -> None:
    start = harness.clock.now
    before = await harness.provider.create_payment(charge_request(order_id="ord_a"))
    harness.clock.now = start + 100
    inside = [
        await harness.provider.create_payment(charge_request(order_id=f"ord_in{i}"))
        for i in range(3)
    ]
    await harness.provider.create_payment(charge_request(method="pm_card_chargeDeclined"))
    harness.clock.now = start + 200
    at_end = await harness.provider.create_payment(charge_request(order_id="ord_z"))
    window = (datetime.fromtimestamp(start + 50, UTC), datetime.fromtimestamp(start + 200, UTC))
    charges = await harness.provider.list_successful_charges(*window)
    assert sorted(c.provider_ref or "" for c in charges) == sorted(
        r.provider_ref or "" for r in inside
    )
    assert before.provider_ref not in {c.provider_ref for c in charges}
    assert at_end.provider_ref not in {c.provider_ref for c in charges}
    assert {c.order_id for c in charges} == {"ord_in0", "ord_in1", "ord_in2"}
    assert all(c.amount == 2599 and c.currency == "EUR" for c in charges)


async def test_a_signed_webhook_verifies_and_names_the_payment(harness: Harness) -> None:
    paid = await harness.provider.create_payment(charge_request())
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    event = harness.provider.parse_webhook(body, headers)
    assert event.type == "payment_intent.succeeded"
    assert event.payment is not None
    assert event.payment.provider_ref == paid.provider_ref
    assert event.payment.outcome is PaymentOutcome.SUCCEEDED
    assert event.payment.order_id == paid.order_id


async def test_a_forged_webhook_is_refused(harness: Harness) -> None:
    paid = await harness.provider.create_payment(charge_request(amount=100))
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    tampered = body.replace(b"100", b"999", 1)
    assert tampered != body
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(tampered, headers)
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(body, {})
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(body, {"Stripe-Signature": "t=1,v1=00"})


async def test_a_stale_webhook_is_refused(harness: Harness) -> None:
    paid = await harness.provider.create_payment(charge_request())
    assert paid.provider_ref is not None
    stale_at = int(time.time()) - 400
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=stale_at)
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(body, headers)


async def test_webhook_header_names_match_without_regard_to_case(harness: Harness) -> None:
    paid = await harness.provider.create_payment(charge_request())
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    lowered = {key.lower(): value for key, value in headers.items()}
    event = harness.provider.parse_webhook(body, lowered)
    assert event.payment is not None and event.payment.provider_ref == paid.provider_ref


async def test_a_payment_awaiting_authentication_can_be_cancelled_and_then_never_charges(
    harness: Harness,
) -> None:
    request = charge_request(method="pm_card_authenticationRequired")
    pending = await harness.provider.create_payment(request)
    assert pending.outcome is PaymentOutcome.ACTION_REQUIRED and pending.provider_ref
    cancelled = await harness.provider.cancel_payment(pending.provider_ref)
    assert cancelled.outcome is PaymentOutcome.FAILED
    assert cancelled.provider_ref == pending.provider_ref
    assert (cancelled.decline_code, cancelled.retry_with_other_method) == ("canceled", False)
    assert cancelled.redirect_url is None
    assert (cancelled.order_id, cancelled.amount) == (request.order_id, request.amount)

    await harness.complete_action(pending.provider_ref, approved=True)  # the shopper, too late

    after = await harness.provider.retrieve_payment(pending.provider_ref)
    assert after.outcome is PaymentOutcome.FAILED
    assert await harness.successful_charges(request.order_id) == 0
    window = (datetime.fromtimestamp(harness.clock.now - 60, UTC), datetime(2100, 1, 1, tzinfo=UTC))
    charges = await harness.provider.list_successful_charges(*window)
    assert pending.provider_ref not in {c.provider_ref for c in charges}
    [found] = await harness.provider.find_payments(request.order_id)
    assert found.outcome is PaymentOutcome.FAILED


async def test_cancelling_twice_answers_failed_both_times(harness: Harness) -> None:
    request = charge_request(method="pm_card_authenticationRequired")
    pending = await harness.provider.create_payment(request)
    assert pending.provider_ref is not None
    first = await harness.provider.cancel_payment(pending.provider_ref)
    second = await harness.provider.cancel_payment(pending.provider_ref)
    assert first.outcome is second.outcome is PaymentOutcome.FAILED
    assert first.provider_ref == second.provider_ref == pending.provider_ref
    assert await harness.successful_charges(request.order_id) == 0


async def test_cancelling_a_declined_payment_leaves_it_failed(harness: Harness) -> None:
    request = charge_request(method="pm_card_chargeDeclined")
    declined = await harness.provider.create_payment(request)
    assert declined.provider_ref is not None
    cancelled = await harness.provider.cancel_payment(declined.provider_ref)
    assert cancelled.outcome is PaymentOutcome.FAILED
    assert cancelled.retry_with_other_method is False
    assert await harness.successful_charges(request.order_id) == 0


async def test_cancelling_a_succeeded_payment_answers_succeeded_and_keeps_the_charge(
    harness: Harness,
) -> None:
    request = charge_request(amount=1234)
    paid = await harness.provider.create_payment(request)
    assert paid.outcome is PaymentOutcome.SUCCEEDED and paid.provider_ref
    answer = await harness.provider.cancel_payment(paid.provider_ref)
    assert answer.outcome is PaymentOutcome.SUCCEEDED
    assert (answer.provider_ref, answer.amount) == (paid.provider_ref, 1234)
    again = await harness.provider.cancel_payment(paid.provider_ref)
    assert again.outcome is PaymentOutcome.SUCCEEDED
    after = await harness.provider.retrieve_payment(paid.provider_ref)
    assert after.outcome is PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 1
    refund = await harness.provider.refund(paid.provider_ref, amount=None, idempotency_key="r-c")
    assert refund.amount == 1234


async def test_cancelling_a_payment_after_authentication_succeeded_answers_succeeded(
    harness: Harness,
) -> None:
    request = charge_request(method="pm_card_authenticationRequired")
    pending = await harness.provider.create_payment(request)
    assert pending.provider_ref is not None
    await harness.complete_action(pending.provider_ref, approved=True)
    answer = await harness.provider.cancel_payment(pending.provider_ref)
    assert answer.outcome is PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 1


async def test_cancelling_an_unknown_payment_is_refused(harness: Harness) -> None:
    with pytest.raises(ProviderRejected):
        await harness.provider.cancel_payment("pi_does_not_exist")
