"""The events the sandbox records (and sends), as Stripe sends them, with the ledger as oracle.

Every PaymentIntent starts with ``payment_intent.created`` (its snapshot before
confirmation); charges send ``charge.succeeded``/``charge.failed``; refunds send
``refund.created`` and ``charge.refunded`` in the current shape (cumulative
``amount_refunded``, a ``refunded`` flag, no ``refunds`` list), and ``refund.updated``
with ``charge.refund.updated`` when a refund settles or fails later.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from orderguard.providers.base import PaymentOutcome, ProviderRejected
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.conftest import charge_request
from tests.providers.harness import SECRET
from tests.providers.sandbox_client import ledger, set_faults


async def events_about(base_url: str, object_ids: set[str]) -> list[dict[str, Any]]:
    """Recorded events whose object is one of ``object_ids``, in the order they were made."""
    return [
        e for e in (await ledger(base_url))["events"] if e["data"]["object"]["id"] in object_ids
    ]


def parsed(evt: dict[str, Any]) -> Any:
    body = {k: v for k, v in evt.items() if k != "_delivery"}
    return StripeProvider(api_key="sk_test_x", webhook_secret=SECRET).decode_webhook(
        json.dumps(body).encode()
    )


async def settle(base_url: str, refund_id: str, **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as http:
        return await http.post(f"/_sandbox/refunds/{refund_id}", json=body)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("pm_card_visa", ["charge.succeeded", "payment_intent.succeeded"]),
        ("pm_card_chargeDeclined", ["charge.failed", "payment_intent.payment_failed"]),
        ("pm_card_authenticationRequired", ["payment_intent.requires_action"]),
    ],
)
async def test_every_payment_starts_with_a_created_event_holding_the_snapshot_before_confirming(
    sandbox_url: str, stripe_provider: StripeProvider, method: str, expected: list[str]
) -> None:
    request = charge_request(method=method)
    result = await stripe_provider.create_payment(request)
    assert result.provider_ref is not None
    book = await ledger(sandbox_url)
    charge_ids = {c["id"] for c in book["charges"] if c["payment_intent"] == result.provider_ref}
    events = await events_about(sandbox_url, {result.provider_ref, *charge_ids})
    assert [e["type"] for e in events] == ["payment_intent.created", *expected]

    created = events[0]["data"]["object"]
    assert (created["status"], created["amount_received"], created["latest_charge"]) == (
        "requires_confirmation",
        0,
        None,
    )
    assert created["metadata"]["attempt_id"] == request.attempt_id
    early = parsed(events[0])
    assert early.payment is not None
    assert (early.payment.provider_ref, early.payment.outcome) == (
        result.provider_ref,
        PaymentOutcome.PENDING,
    )
    for evt in events[1:]:
        if evt["type"].startswith("charge."):
            charge = evt["data"]["object"]
            assert (charge["object"], charge["payment_intent"]) == ("charge", result.provider_ref)
            assert charge["status"] == evt["type"].removeprefix("charge.")


async def test_partial_refunds_add_up_in_charge_refunded_without_a_refunds_list(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    result = await stripe_provider.create_payment(charge_request(amount=2599))
    ref = result.provider_ref
    assert ref is not None
    made = [
        await stripe_provider.refund(ref, amount=500, idempotency_key="r1"),
        await stripe_provider.refund(ref, amount=300, idempotency_key="r2"),
        await stripe_provider.refund(ref, amount=None, idempotency_key="r3"),  # the rest
    ]
    assert [r.amount for r in made] == [500, 300, 1799]
    with pytest.raises(ProviderRejected):  # nothing is left to refund
        await stripe_provider.refund(ref, amount=1, idempotency_key="r4")

    events = await events_about(
        sandbox_url, {r.refund_ref for r in made} | _charge_ids(await ledger(sandbox_url), ref)
    )
    refunded = [e["data"]["object"] for e in events if e["type"] == "charge.refunded"]
    assert [(c["amount_refunded"], c["refunded"]) for c in refunded] == [
        (500, False),
        (800, False),
        (2599, True),
    ]
    assert all("refunds" not in c for c in refunded)
    created = [e["data"]["object"] for e in events if e["type"] == "refund.created"]
    assert [(r["amount"], r["status"]) for r in created] == [
        (500, "succeeded"),
        (300, "succeeded"),
        (1799, "succeeded"),
    ]
    assert [e["type"] for e in events] == ["charge.succeeded"] + [
        "refund.created",
        "charge.refunded",
    ] * 3


def _charge_ids(book: dict[str, Any], intent_id: str) -> set[str]:
    return {c["id"] for c in book["charges"] if c["payment_intent"] == intent_id}


async def test_a_pending_refund_settles_with_refund_updated(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    result = await stripe_provider.create_payment(charge_request(amount=1000))
    assert result.provider_ref is not None
    await set_faults(sandbox_url, refund_pending=1.0)
    refund = await stripe_provider.refund(result.provider_ref, amount=400, idempotency_key="p1")
    assert refund.status == "pending"

    answer = await settle(sandbox_url, refund.refund_ref, status="succeeded")
    assert (answer.status_code, answer.json()["status"]) == (200, "succeeded")

    events = await events_about(sandbox_url, {refund.refund_ref})
    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [
        ("refund.created", "pending"),
        ("refund.updated", "succeeded"),
        ("charge.refund.updated", "succeeded"),
    ]
    [charge] = (await ledger(sandbox_url))["charges"]
    assert (charge["amount_refunded"], charge["refunded"]) == (400, False)
    update = parsed(events[1])
    assert update.refund is not None
    assert (update.refund.refund_ref, update.refund.status) == (refund.refund_ref, "succeeded")


async def test_a_refund_failing_later_gives_the_amount_back_and_says_so(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    result = await stripe_provider.create_payment(charge_request(amount=1000))
    ref = result.provider_ref
    assert ref is not None
    refund = await stripe_provider.refund(ref, amount=None, idempotency_key="f1")
    assert refund.status == "succeeded"

    answer = await settle(
        sandbox_url, refund.refund_ref, status="failed", failure_reason="expired_or_canceled_card"
    )
    assert answer.status_code == 200, answer.text

    book = await ledger(sandbox_url)
    [charge] = book["charges"]
    assert (charge["amount_refunded"], charge["refunded"]) == (0, False)
    [stored] = book["refunds"]
    assert (stored["status"], stored["failure_reason"]) == ("failed", "expired_or_canceled_card")
    events = await events_about(sandbox_url, {refund.refund_ref})
    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [
        ("refund.created", "succeeded"),
        ("refund.updated", "failed"),
        ("charge.refund.updated", "failed"),
    ]
    update = parsed(events[1])
    assert update.refund is not None
    assert (update.refund.status, update.refund.failure_reason) == (
        "failed",
        "expired_or_canceled_card",
    )
    again = await stripe_provider.refund(ref, amount=None, idempotency_key="f2")
    assert again.amount == 1000  # the money is refundable again


async def test_settling_a_refund_refuses_moves_stripe_does_not_make(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    result = await stripe_provider.create_payment(charge_request(amount=1000))
    assert result.provider_ref is not None
    refund = await stripe_provider.refund(result.provider_ref, amount=100, idempotency_key="s1")
    assert (await settle(sandbox_url, refund.refund_ref, status="succeeded")).status_code == 400
    assert (await settle(sandbox_url, refund.refund_ref, status="pending")).status_code == 400
    bad_reason = await settle(sandbox_url, refund.refund_ref, status="failed", failure_reason="x")
    assert bad_reason.status_code == 400
    assert (await settle(sandbox_url, "re_missing", status="failed")).status_code == 404
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        assert (
            await http.post(f"/_sandbox/refunds/{refund.refund_ref}", content=b"[")
        ).status_code == 400
    assert (await settle(sandbox_url, refund.refund_ref, status="failed")).status_code == 200
    assert (await settle(sandbox_url, refund.refund_ref, status="succeeded")).status_code == 400
    [stored] = (await ledger(sandbox_url))["refunds"]
    assert (stored["status"], stored["failure_reason"]) == ("failed", "declined")
