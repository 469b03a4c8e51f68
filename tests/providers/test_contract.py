"""The provider contract: the same tests, unchanged, against every implementation.

``harness`` is parametrized over Stripe's sandbox (real HTTP through ``StripeProvider``),
the in-memory fake, and the wallets: the Alipay and WeChat Pay adapters against their own
sandboxes. Each test states a behaviour; the harness supplies the provider's means (a good
card or a shopper who pays at the wallet) and, where the protocols answer differently, the
answer that provider documents (:mod:`tests.providers.expect`). Ledger counts come from each
implementation's own books (a sandbox's ``/ledger``), not from the answers under test.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from orderguard.providers.base import (
    InvalidWebhook,
    PaymentOutcome,
    PaymentProvider,
    ProviderError,
    ProviderKeyConflict,
    ProviderRejected,
    RefundResult,
    WebhookEvent,
)
from tests.providers.harness import Harness

#: The end of every listing window: far in the future.
FAR = datetime(2100, 1, 1, tzinfo=UTC)


async def _parsed(harness: Harness, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    return harness.provider.parse_webhook(body, headers)


async def test_a_paid_payment_succeeds_and_carries_the_order(harness: Harness) -> None:
    request = harness.request(amount=4200)
    created = await harness.provider.create_payment(request)
    assert created.outcome is harness.new_outcome
    assert (created.order_id, created.attempt_id) == (request.order_id, request.attempt_id)
    assert (created.amount, created.currency) == (4200, harness.currency)
    for key in harness.kept_metadata:
        assert created.metadata[key] == request.metadata[key]
    assert await harness.successful_charges(request.order_id) == int(
        harness.new_outcome is PaymentOutcome.SUCCEEDED
    )
    result = await harness.pay(created)
    assert result.outcome is PaymentOutcome.SUCCEEDED
    assert (result.provider_ref, result.amount, result.currency) == (
        created.provider_ref,
        4200,
        harness.currency,
    )
    assert await harness.successful_charges(request.order_id) == 1


async def test_a_decline_is_a_failed_result_with_its_code_not_an_error(harness: Harness) -> None:
    result = await harness.declined(order_id="ord_declined")
    assert result.outcome is PaymentOutcome.FAILED
    assert result.decline_code == harness.decline_code
    assert result.retry_with_other_method is True
    assert result.provider_ref is not None
    assert await harness.successful_charges("ord_declined") == 0


async def test_an_approved_challenge_ends_in_success(harness: Harness) -> None:
    request = harness.challenge_request()
    first = await harness.provider.create_payment(request)
    assert first.outcome is PaymentOutcome.ACTION_REQUIRED
    assert first.redirect_url and first.provider_ref
    assert await harness.follow(first) == first.provider_ref
    assert await harness.successful_charges(request.order_id) == 0
    await harness.complete_action(first, approved=True)
    after = await harness.provider.retrieve_payment(first.provider_ref)
    assert after.outcome is PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 1


async def test_a_refused_challenge_fails_and_invites_another_method(harness: Harness) -> None:
    request = harness.challenge_request()
    first = await harness.provider.create_payment(request)
    assert first.provider_ref is not None
    await harness.complete_action(first, approved=False)
    after = await harness.provider.retrieve_payment(first.provider_ref)
    assert after.outcome is PaymentOutcome.FAILED
    assert after.retry_with_other_method is True
    assert await harness.successful_charges(request.order_id) == 0


async def test_a_payment_the_shopper_has_not_reached_is_awaited_never_failed(
    harness: Harness,
) -> None:
    """A wallet's trade does not exist until the shopper scans or logs in (Alipay's
    ``ACQ.TRADE_NOT_EXIST``, WeChat Pay's ``ORDER_NOT_EXIST``): still to act, not failed."""
    request = harness.challenge_request()
    created = await harness.provider.create_payment(request)
    assert created.provider_ref is not None
    for _ in range(2):
        seen = await harness.provider.retrieve_payment(created.provider_ref)
        assert seen.outcome is PaymentOutcome.ACTION_REQUIRED
        assert seen.provider_ref == created.provider_ref
    assert await harness.successful_charges(request.order_id) == 0
    await harness.complete_action(created, approved=True)
    paid = await harness.provider.retrieve_payment(created.provider_ref)
    assert (paid.outcome, paid.amount) == (PaymentOutcome.SUCCEEDED, request.amount)


async def test_the_same_idempotency_key_twice_charges_once(harness: Harness) -> None:
    request = harness.request()
    first = await harness.provider.create_payment(request)
    second = await harness.provider.create_payment(request)
    assert second.provider_ref == first.provider_ref
    await harness.pay(first)
    third = await harness.provider.create_payment(request)  # after the payment, too
    assert third.provider_ref == first.provider_ref
    await harness.pay(third)
    assert await harness.successful_charges(request.order_id) == 1


async def test_the_same_key_with_another_amount_is_a_key_conflict_not_a_rejection(
    harness: Harness,
) -> None:
    request = harness.request(amount=100)
    first = await harness.provider.create_payment(request)
    altered = harness.request(amount=999, order_id=request.order_id, attempt_id=request.attempt_id)
    with pytest.raises(ProviderKeyConflict) as refused:
        await harness.provider.create_payment(altered)
    assert not isinstance(refused.value, ProviderRejected)  # the first request may have charged
    assert refused.value.safe_to_retry is False  # repeating gets the same refusal
    paid = await harness.pay(first)
    assert (paid.outcome, paid.amount) == (PaymentOutcome.SUCCEEDED, 100)
    assert await harness.successful_charges(request.order_id) == 1


async def test_retrieve_returns_the_payment_and_answers_an_unknown_one_as_documented(
    harness: Harness,
) -> None:
    made = await harness.provider.create_payment(harness.request(amount=777))
    assert made.provider_ref is not None
    seen = await harness.provider.retrieve_payment(made.provider_ref)
    assert (seen.provider_ref, seen.outcome) == (made.provider_ref, made.outcome)
    await harness.pay(made)
    paid = await harness.provider.retrieve_payment(made.provider_ref)
    assert (paid.provider_ref, paid.outcome, paid.amount) == (
        made.provider_ref,
        PaymentOutcome.SUCCEEDED,
        777,
    )
    await harness.unknown_retrieval.check(harness.provider.retrieve_payment(harness.unknown_ref))


async def test_find_payments_returns_every_attempt_of_one_order_only(harness: Harness) -> None:
    declined = await harness.declined(order_id="ord_find'me")
    _, paid = await harness.paid(order_id="ord_find'me")
    await harness.paid(order_id="ord_someone_else")
    search = harness.provider.find_payments("ord_find'me")
    if not harness.capabilities.find_by_order_id:  # the profile says it cannot search
        await harness.unoffered.check(search)
        return
    found = await search
    assert {r.provider_ref for r in found} == {declined.provider_ref, paid.provider_ref}
    assert {r.outcome for r in found} == {PaymentOutcome.FAILED, PaymentOutcome.SUCCEEDED}
    assert await harness.provider.find_payments("ord_nobody") == []


async def test_refunds_partial_then_full_each_idempotent(harness: Harness) -> None:
    _, paid = await harness.paid(amount=1000)
    ref = paid.provider_ref
    assert ref is not None
    part = await harness.provider.refund(ref, amount=300, idempotency_key=f"{ref}-r1")
    again = await harness.provider.refund(ref, amount=300, idempotency_key=f"{ref}-r1")
    assert (part.amount, part.provider_ref, part.currency) == (300, ref, harness.currency)
    assert again.refund_ref == part.refund_ref
    assert await harness.refunded(ref) == 300
    rest = await harness.refund_rest(ref, left=700, key=f"{ref}-r2")
    assert rest.amount == 700 and rest.refund_ref != part.refund_ref
    rest_again = await harness.refund_rest(ref, left=700, key=f"{ref}-r2")
    assert rest_again.refund_ref == rest.refund_ref
    with pytest.raises(ProviderRejected):
        await harness.provider.refund(ref, amount=None, idempotency_key=f"{ref}-r3")
    assert await harness.refunded(ref) == 1000
    if harness.capabilities.list_recent_charges:
        since = datetime.fromtimestamp(harness.clock.now - 60, UTC)
        charges = await harness.provider.list_successful_charges(since, FAR)
        assert [(c.provider_ref, c.amount_refunded) for c in charges] == [(ref, 1000)]


async def test_a_refund_keeps_the_metadata_it_was_made_with(harness: Harness) -> None:
    """orderguard finds its own refund record in the provider's refund events by this."""
    _, paid = await harness.paid(amount=1000)
    assert paid.provider_ref is not None
    made = await harness.provider.refund(
        paid.provider_ref, amount=400, idempotency_key="r-meta", metadata={"refund_id": "rfd_1"}
    )
    kept = {k: v for k, v in made.metadata.items() if k not in harness.refund_metadata_added}
    assert kept == {"refund_id": "rfd_1"}


async def test_a_refund_of_a_declined_payment_is_refused(harness: Harness) -> None:
    declined = await harness.declined()
    assert declined.provider_ref is not None
    with pytest.raises(ProviderRejected):
        await harness.provider.refund(declined.provider_ref, amount=None, idempotency_key="rx")
    assert await harness.refunded(declined.provider_ref) == 0


async def test_a_refund_of_a_payment_not_yet_paid_is_refused(harness: Harness) -> None:
    created = await harness.provider.create_payment(harness.challenge_request())
    ref = created.provider_ref
    assert ref is not None
    with pytest.raises(ProviderRejected):  # the shopper has not reached it
        await harness.provider.refund(ref, amount=100, idempotency_key=f"{ref}-early")
    await harness.follow(created)
    with pytest.raises(ProviderRejected):  # reached, not paid
        await harness.provider.refund(ref, amount=None, idempotency_key=f"{ref}-early2")
    assert await harness.refunded(ref) == 0


async def test_successful_charges_are_listed_by_creation_window(harness: Harness) -> None:
    start = harness.clock.now
    before = await harness.paid(order_id="ord_a")
    if not harness.capabilities.list_recent_charges:  # the profile says it cannot list
        window = (datetime.fromtimestamp(start - 50, UTC), FAR)
        await harness.unoffered.check(harness.provider.list_successful_charges(*window))
        return
    harness.clock.now = start + 100
    inside = [
        await harness.provider.create_payment(harness.request(order_id=f"ord_in{i}"))
        for i in range(3)
    ]
    await harness.declined()
    harness.clock.now = start + 200
    _, at_end = await harness.paid(order_id="ord_z")
    window = (datetime.fromtimestamp(start + 50, UTC), datetime.fromtimestamp(start + 200, UTC))
    charges = await harness.provider.list_successful_charges(*window)
    assert sorted(c.provider_ref or "" for c in charges) == sorted(
        r.provider_ref or "" for r in inside
    )
    assert before[1].provider_ref not in {c.provider_ref for c in charges}
    assert at_end.provider_ref not in {c.provider_ref for c in charges}
    assert {c.order_id for c in charges} == {"ord_in0", "ord_in1", "ord_in2"}
    assert all(c.amount == 2599 and c.currency == harness.currency for c in charges)


async def test_a_signed_webhook_verifies_and_names_the_payment(harness: Harness) -> None:
    request, paid = await harness.paid()
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    event = harness.provider.parse_webhook(body, headers)
    assert event.type == harness.succeeded_event
    assert event.payment is not None
    assert event.payment.provider_ref == paid.provider_ref
    assert event.payment.outcome is PaymentOutcome.SUCCEEDED
    assert event.payment.order_id == request.order_id
    assert event.payment.amount == request.amount


async def test_a_forged_webhook_is_refused(harness: Harness) -> None:
    _, paid = await harness.paid(amount=100)
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    tampered = harness.tamper(body)
    assert tampered != body
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(tampered, headers)
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(*harness.unsigned(body, headers))
    with pytest.raises(InvalidWebhook):
        harness.provider.parse_webhook(*harness.badly_signed(body, headers))


async def test_a_stale_webhook_is_answered_as_the_provider_documents(harness: Harness) -> None:
    """Refused where the signature carries a time (Stripe, WeChat Pay: 5 minutes)."""
    _, paid = await harness.paid()
    assert paid.provider_ref is not None
    stale_at = int(time.time()) - 400
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=stale_at)
    await harness.stale_webhook.check(_parsed(harness, body, headers))


async def test_webhook_header_names_match_without_regard_to_case(harness: Harness) -> None:
    _, paid = await harness.paid()
    assert paid.provider_ref is not None
    body, headers = await harness.signed_webhook(paid.provider_ref, timestamp=int(time.time()))
    for cased in (str.lower, str.upper):
        recased = {cased(key): value for key, value in headers.items()}
        event = harness.provider.parse_webhook(body, recased)
        assert event.payment is not None and event.payment.provider_ref == paid.provider_ref


async def test_a_payment_awaiting_the_shopper_can_be_cancelled_and_then_never_charges(
    harness: Harness,
) -> None:
    request = harness.challenge_request()
    pending = await harness.provider.create_payment(request)
    assert pending.outcome is PaymentOutcome.ACTION_REQUIRED and pending.provider_ref
    await harness.follow(pending)  # the shopper is at the page, and does not go on
    cancelled = await harness.provider.cancel_payment(pending.provider_ref)
    assert cancelled.outcome is PaymentOutcome.FAILED
    assert cancelled.provider_ref == pending.provider_ref
    assert (cancelled.decline_code, cancelled.retry_with_other_method) == (
        harness.cancel_code,
        False,
    )
    assert cancelled.redirect_url is None

    await harness.complete_action(pending, approved=True)  # the shopper, too late

    after = await harness.provider.retrieve_payment(pending.provider_ref)
    assert after.outcome is PaymentOutcome.FAILED
    assert after.amount in (None, request.amount)
    assert await harness.successful_charges(request.order_id) == 0
    if harness.capabilities.list_recent_charges:
        window = (datetime.fromtimestamp(harness.clock.now - 60, UTC), FAR)
        charges = await harness.provider.list_successful_charges(*window)
        assert pending.provider_ref not in {c.provider_ref for c in charges}
    if harness.capabilities.find_by_order_id:
        [found] = await harness.provider.find_payments(request.order_id)
        assert found.outcome is PaymentOutcome.FAILED
    if harness.cancel_restates_payment:
        assert (cancelled.order_id, cancelled.amount) == (request.order_id, request.amount)


async def test_cancelling_a_payment_the_shopper_never_reached_answers_closed(
    harness: Harness,
) -> None:
    """A wallet closes a trade that was never created (no scan, no login) as closed."""
    request = harness.challenge_request()
    pending = await harness.provider.create_payment(request)
    assert pending.provider_ref is not None
    cancelled = await harness.provider.cancel_payment(pending.provider_ref)
    assert (cancelled.outcome, cancelled.decline_code) == (
        PaymentOutcome.FAILED,
        harness.cancel_code,
    )
    assert cancelled.provider_ref == pending.provider_ref
    again = await harness.provider.cancel_payment(pending.provider_ref)
    assert again.outcome is PaymentOutcome.FAILED
    after = await harness.provider.retrieve_payment(pending.provider_ref)
    assert after.outcome is not PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 0


async def test_cancelling_twice_answers_failed_both_times(harness: Harness) -> None:
    request = harness.challenge_request()
    pending = await harness.provider.create_payment(request)
    assert pending.provider_ref is not None
    await harness.follow(pending)
    first = await harness.provider.cancel_payment(pending.provider_ref)
    second = await harness.provider.cancel_payment(pending.provider_ref)
    assert first.outcome is second.outcome is PaymentOutcome.FAILED
    assert first.provider_ref == second.provider_ref == pending.provider_ref
    assert second.retry_with_other_method is False
    assert await harness.successful_charges(request.order_id) == 0


async def test_cancelling_a_declined_payment_leaves_it_failed(harness: Harness) -> None:
    declined = await harness.declined(order_id="ord_declined_then_cancelled")
    assert declined.provider_ref is not None
    cancelled = await harness.provider.cancel_payment(declined.provider_ref)
    assert cancelled.outcome is PaymentOutcome.FAILED
    assert cancelled.retry_with_other_method is False
    assert await harness.successful_charges("ord_declined_then_cancelled") == 0


async def test_cancelling_a_succeeded_payment_answers_succeeded_and_keeps_the_charge(
    harness: Harness,
) -> None:
    request, paid = await harness.paid(amount=1234)
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
    assert await harness.refunded(paid.provider_ref) == 1234


async def test_cancelling_a_payment_after_the_shopper_paid_answers_succeeded(
    harness: Harness,
) -> None:
    request = harness.challenge_request()
    pending = await harness.provider.create_payment(request)
    assert pending.provider_ref is not None
    await harness.complete_action(pending, approved=True)
    answer = await harness.provider.cancel_payment(pending.provider_ref)
    assert answer.outcome is PaymentOutcome.SUCCEEDED
    assert await harness.successful_charges(request.order_id) == 1


async def test_cancelling_an_unknown_payment_is_answered_as_documented(harness: Harness) -> None:
    await harness.unknown_cancel.check(harness.provider.cancel_payment(harness.unknown_ref))


# -- refund lookups (issue 19): a refund whose answer or notification was lost ---------------


async def _refund(harness: Harness, amount: int) -> tuple[str, str, dict[str, str], RefundResult]:
    """A paid payment refunded in part, the way orderguard sends refunds: its reference,
    the refund's key and metadata (its own ``refund_id``), and the provider's answer."""
    _, paid = await harness.paid(amount=1000)
    assert paid.provider_ref is not None
    refund_id = f"rfd_{secrets.token_hex(6)}"
    key, meta = f"orderguard-refund-{refund_id}", {"refund_id": refund_id}
    made = await harness.provider.refund(
        paid.provider_ref, amount=amount, idempotency_key=key, metadata=meta
    )
    return paid.provider_ref, key, meta, made


async def _lookup(
    provider: PaymentProvider,
    ref: str,
    key: str,
    meta: dict[str, str],
    refund_ref: str | None = None,
) -> RefundResult | None:
    return await provider.retrieve_refund(
        ref, idempotency_key=key, metadata=meta, refund_ref=refund_ref
    )


async def test_a_refund_is_found_by_its_reference_and_by_how_it_was_sent(
    harness: Harness,
) -> None:
    """With the provider's refund id (its answer came back) or without it (it was lost)."""
    ref, key, meta, made = await _refund(harness, 400)
    for refund_ref in (made.refund_ref, None):
        found = await _lookup(harness.provider, ref, key, meta, refund_ref)
        assert found is not None, f"not found with refund_ref={refund_ref}"
        assert (found.refund_ref, found.provider_ref) == (made.refund_ref, ref)
        assert (found.amount, found.currency, found.status) == (400, harness.currency, "succeeded")


async def _made_in_its_answer(harness: Harness) -> None:
    """A provider whose refunds never wait (Alipay: made or refused in the answer, its
    documented behaviour): the refund's answer and its lookup both say it is made."""
    ref, key, meta, made = await _refund(harness, 300)
    assert made.status == "succeeded"
    found = await _lookup(harness.provider, ref, key, meta, made.refund_ref)
    assert found is not None and (found.status, found.amount) == ("succeeded", 300)
    assert await harness.refunded(ref) == 300


async def test_a_pending_refund_is_looked_up_pending_then_succeeded(harness: Harness) -> None:
    if not harness.refunds_wait:
        await _made_in_its_answer(harness)
        return
    await harness.hold_refunds()
    try:
        ref, key, meta, made = await _refund(harness, 300)
    finally:
        await harness.mend()
    assert made.status == "pending"
    waiting = await _lookup(harness.provider, ref, key, meta)
    assert waiting is not None and (waiting.status, waiting.amount) == ("pending", 300)
    await harness.end_refund(made, succeeded=True)
    for refund_ref in (made.refund_ref, None):
        ended = await _lookup(harness.provider, ref, key, meta, refund_ref)
        assert ended is not None and (ended.status, ended.amount) == ("succeeded", 300)
    assert await harness.refunded(ref) == 300


async def test_a_pending_refund_that_fails_is_looked_up_failed(harness: Harness) -> None:
    if not harness.refunds_wait:
        await _made_in_its_answer(harness)
        return
    await harness.hold_refunds()
    try:
        ref, key, meta, made = await _refund(harness, 300)
    finally:
        await harness.mend()
    await harness.end_refund(made, succeeded=False)
    ended = await _lookup(harness.provider, ref, key, meta, made.refund_ref)
    assert ended is not None and ended.status == "failed"
    assert await harness.refunded(ref) == 0


async def test_a_refund_never_made_is_not_found(harness: Harness) -> None:
    """``None``: the request never reached the provider (it may be sent again)."""
    ref, key, meta, _ = await _refund(harness, 200)
    other = f"rfd_{secrets.token_hex(6)}"
    never = {"refund_id": other}
    assert await _lookup(harness.provider, ref, f"orderguard-refund-{other}", never) is None
    _, paid_too = await harness.paid(amount=500)  # another payment: not this refund's
    assert paid_too.provider_ref is not None
    assert await _lookup(harness.provider, paid_too.provider_ref, key, meta) is None


async def test_a_lookup_the_provider_fails_to_answer_raises_and_never_says_failed(
    harness: Harness,
) -> None:
    """A 5xx / SYSTEM_ERROR answer: an error a repeat may overcome, not an outcome."""
    ref, key, meta, made = await _refund(harness, 200)
    await harness.break_lookups()
    try:
        with pytest.raises(ProviderError) as raised:
            await _lookup(harness.provider, ref, key, meta, made.refund_ref)
    finally:
        await harness.mend()
    assert raised.value.safe_to_retry, repr(raised.value)
    found = await _lookup(harness.provider, ref, key, meta, made.refund_ref)
    assert found is not None and found.status == "succeeded"


async def test_a_lookup_that_times_out_raises_and_never_says_failed(harness: Harness) -> None:
    ref, key, meta, made = await _refund(harness, 200)
    impatient = await harness.slow_lookups()
    try:
        with pytest.raises(ProviderError):
            await _lookup(impatient, ref, key, meta, made.refund_ref)
    finally:
        await harness.mend()
        if impatient is not harness.provider:
            await impatient.aclose()
    found = await _lookup(harness.provider, ref, key, meta, made.refund_ref)
    assert found is not None and found.status == "succeeded"
