"""Each sandbox fault on its own, through the API, ends where the design says (G3, G5, G6).

The order is placed over the orderguard API; the Stripe adapter talks HTTP to a sandbox
whose fault profile is switched on for the test. The sandbox ledger is the oracle: however
the answer was lost, an order is charged at most once, an unknown outcome is resolved by
asking the provider (never by charging with a new key), and a client that retries its
``POST /v1/orders`` with the same Idempotency-Key gets the first answer again.

Besides the random faults, the sandbox is told to give Stripe's own error answers (an
idempotency error, ``Stripe-Should-Retry``), and late webhooks are delivered signed as
Stripe's: a snapshot from before 3-D Secure, a refund that fails after the order is refunded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.payment_harness import (
    DECLINED,
    FAST_RETRY,
    PROVIDER_TIMEOUT_S,
    THREE_DS,
    VISA,
    Placed,
    Sandbox,
    Shop,
    assert_client_retry_changes_nothing,
    deliver,
    notes,
    open_shop,
    sandbox,
    states,
)

pytestmark = pytest.mark.timeout(60)

PAID_DIRECTLY = [(None, "received"), ("received", "payment_pending"), ("payment_pending", "paid")]


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box: Sandbox) -> AsyncIterator[Shop]:
    async with open_shop(database_url, [box]) as running:
        yield running


async def test_no_fault_pays_once(shop: Shop, box: Sandbox) -> None:
    """The baseline the fault tests differ from: one intent, one charge, nothing injected."""
    placed = await shop.placed(VISA)
    assert placed.answer["state"] == "paid"
    [intent] = await box.intents(placed.id)
    [charge] = await box.charges(placed.id)
    assert charge["payment_intent"] == intent["id"]
    assert charge["amount"] == placed.answer["amount_total"]
    [attempt] = placed.answer["payment_attempts"]
    assert attempt["provider_ref"] == intent["id"]
    assert intent["metadata"]["attempt_id"] == attempt["id"]
    assert await box.fault_kinds() == []
    assert states(await shop.order(placed.id)) == PAID_DIRECTLY


@pytest.mark.slow
async def test_a_timeout_after_the_charge_is_unknown_then_resolved_by_asking(
    shop: Shop, box: Sandbox
) -> None:
    await box.set_faults(timeout_after=1.0, hold_s=PROVIDER_TIMEOUT_S * 5, limit=1)
    placed = await shop.placed(VISA)

    assert placed.answer["state"] == "payment_unknown"
    [attempt] = placed.answer["payment_attempts"]
    assert (attempt["state"], attempt["provider_ref"]) == ("unknown", None)
    assert await box.fault_kinds() == ["timeout_after"]  # sent once: never retried blindly
    [intent] = await box.intents(placed.id)
    assert len(await box.charges(placed.id)) == 1  # the charge happened; only the answer was lost
    assert any("answer lost after sending" in n for n in notes(await shop.order(placed.id)))
    await assert_client_retry_changes_nothing(shop, placed, box)

    rechecked = await shop.recheck(placed.id)

    assert rechecked["state"] == "paid"
    [attempt] = rechecked["payment_attempts"]
    assert (attempt["state"], attempt["provider_ref"]) == ("succeeded", intent["id"])
    assert len(await box.charges(placed.id)) == 1
    assert len(await box.intents(placed.id)) == 1
    assert states(rechecked) == [
        *PAID_DIRECTLY[:2],
        ("payment_pending", "payment_unknown"),
        ("payment_unknown", "paid"),
    ]
    await assert_client_retry_changes_nothing(shop, placed, box)


async def test_a_500_before_the_charge_is_retried_and_pays_once(shop: Shop, box: Sandbox) -> None:
    await box.set_faults(error_before=1.0, limit=1)
    placed = await shop.placed(VISA)

    assert placed.answer["state"] == "paid"
    [entry] = await box.fault_log()
    assert (entry["kind"], entry["detail"]) == ("error_before", "/v1/payment_intents")
    assert len(await box.charges(placed.id)) == 1
    assert len(await box.intents(placed.id)) == 1
    assert states(await shop.order(placed.id)) == PAID_DIRECTLY
    await assert_client_retry_changes_nothing(shop, placed, box)


async def test_a_500_after_the_charge_is_retried_with_the_same_key_and_pays_once(
    shop: Shop, box: Sandbox
) -> None:
    await box.set_faults(error_after=1.0, limit=1)
    placed = await shop.placed(VISA)

    assert placed.answer["state"] == "paid"
    assert await box.fault_kinds() == ["error_after"]
    # The retry replayed the stored result of the first call: one intent, one charge.
    [intent] = await box.intents(placed.id)
    assert len(await box.charges(placed.id)) == 1
    assert placed.answer["payment_attempts"][0]["provider_ref"] == intent["id"]
    assert states(await shop.order(placed.id)) == PAID_DIRECTLY
    await assert_client_retry_changes_nothing(shop, placed, box)


@pytest.mark.parametrize("limit", [1, 2])
async def test_rate_limiting_is_retried_and_pays_once(shop: Shop, box: Sandbox, limit: int) -> None:
    await box.set_faults(rate_limit=1.0, limit=limit)
    placed = await shop.placed(VISA)

    assert placed.answer["state"] == "paid"
    assert await box.fault_kinds() == ["rate_limit"] * limit
    assert len(await box.charges(placed.id)) == 1
    assert len(await box.intents(placed.id)) == 1
    assert states(await shop.order(placed.id)) == PAID_DIRECTLY
    await assert_client_retry_changes_nothing(shop, placed, box)


async def test_an_outage_longer_than_the_retries_is_unknown_until_asked_again(
    shop: Shop, box: Sandbox
) -> None:
    await box.outage(600)  # far past the retry deadline; ended below
    placed = await shop.placed(VISA)

    # 5xx after every retry: it may have reached the provider, so the outcome is unknown.
    assert placed.answer["state"] == "payment_unknown"
    [attempt] = placed.answer["payment_attempts"]
    assert attempt["state"] == "unknown"
    assert await box.fault_kinds() == ["outage"] * FAST_RETRY.attempts
    assert any("provider error after retries" in n for n in notes(await shop.order(placed.id)))
    await assert_client_retry_changes_nothing(shop, placed, box)

    during = await shop.recheck(placed.id)  # the provider cannot answer yet: nothing moves
    assert during["state"] == "payment_unknown"
    assert await box.charges(placed.id) == []

    await box.outage(0)
    rechecked = await shop.recheck(placed.id)

    assert rechecked["state"] == "paid"
    [attempt] = rechecked["payment_attempts"]
    assert attempt["state"] == "succeeded"
    [charge] = await box.charges(placed.id)
    [intent] = await box.intents(placed.id)
    # Re-sent as the same attempt (same idempotency key), not as a new one.
    assert intent["metadata"]["attempt_id"] == attempt["id"]
    assert charge["payment_intent"] == intent["id"] == attempt["provider_ref"]
    await assert_client_retry_changes_nothing(shop, placed, box)


async def test_a_decline_fails_and_another_method_pays_once(shop: Shop, box: Sandbox) -> None:
    placed = await shop.placed(DECLINED)

    assert placed.answer["state"] == "payment_failed"
    [attempt] = placed.answer["payment_attempts"]
    assert attempt["state"] == "failed"
    assert attempt["decline_code"]
    assert await box.charges(placed.id) == []
    [declined] = await box.intents(placed.id)
    assert declined["status"] == "requires_payment_method"
    await assert_client_retry_changes_nothing(shop, placed, box)

    again = await shop.pay_again(placed.id, VISA)

    assert again.status_code == 201, again.text
    assert again.json()["state"] == "paid"
    first, second = again.json()["payment_attempts"]
    assert (first["state"], second["state"]) == ("failed", "succeeded")
    [charge] = await box.charges(placed.id)
    intents = await box.intents(placed.id)
    assert len(intents) == 2
    assert charge["payment_intent"] == second["provider_ref"] != first["provider_ref"]
    assert states(await shop.order(placed.id)) == [
        *PAID_DIRECTLY[:2],
        ("payment_pending", "payment_failed"),
        ("payment_failed", "payment_pending"),
        ("payment_pending", "paid"),
    ]
    await assert_client_retry_changes_nothing(shop, placed, box)


async def placed_after_answer(shop: Shop, box: Sandbox, **answer: Any) -> Placed:
    """Place a card order whose first provider call gets ``answer``, asked exactly once."""
    await box.script(**answer)
    placed = await shop.placed(VISA)
    assert await box.fault_kinds() == ["scripted"]  # one answer, never sent under a new key
    return placed


async def test_an_idempotency_error_after_the_charge_is_unknown_then_paid_by_asking(
    shop: Shop, box: Sandbox
) -> None:
    placed = await placed_after_answer(shop, box, status=400, type="idempotency_error", after=True)

    assert placed.answer["state"] == "payment_unknown"  # not payment_failed: it may have charged
    [attempt] = placed.answer["payment_attempts"]
    assert attempt["state"] == "unknown"
    assert len(await box.charges(placed.id)) == 1

    rechecked = await shop.recheck(placed.id)

    assert rechecked["state"] == "paid"
    [intent] = await box.intents(placed.id)
    assert rechecked["payment_attempts"][0]["provider_ref"] == intent["id"]
    assert len(await box.charges(placed.id)) == 1
    assert states(rechecked)[-1] == ("payment_unknown", "paid")


async def test_should_retry_false_on_a_500_is_not_repeated_then_the_same_key_pays_once(
    shop: Shop, box: Sandbox
) -> None:
    placed = await placed_after_answer(
        shop, box, status=500, type="api_error", should_retry="false"
    )

    assert placed.answer["state"] == "payment_unknown"  # Stripe said not to repeat it
    assert await box.intents(placed.id) == []

    rechecked = await shop.recheck(placed.id)  # nothing found: re-sent with the attempt's key

    assert rechecked["state"] == "paid"
    [intent] = await box.intents(placed.id)
    assert intent["metadata"]["attempt_id"] == placed.answer["payment_attempts"][0]["id"]
    assert len(await box.charges(placed.id)) == 1


async def test_should_retry_true_on_a_refusal_repeats_it_with_the_same_key_and_pays_once(
    shop: Shop, box: Sandbox
) -> None:
    placed = await placed_after_answer(
        shop, box, status=400, type="invalid_request_error", should_retry="true"
    )

    assert placed.answer["state"] == "paid"
    assert len(await box.intents(placed.id)) == 1
    assert len(await box.charges(placed.id)) == 1


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("payment_intent.created", "requires_confirmation"),
        ("payment_intent.created", "requires_payment_method"),
        ("payment_intent.processing", "processing"),
    ],
)
async def test_a_late_pending_snapshot_leaves_the_order_action_required_with_its_link(
    shop: Shop, box: Sandbox, event_type: str, status: str
) -> None:
    placed = await shop.placed(THREE_DS)
    assert placed.answer["state"] == "action_required"
    link = placed.answer["next_action"]
    [intent] = await box.intents(placed.id)
    before_3ds = {**intent, "status": status, "next_action": None, "last_payment_error": None}

    await deliver(shop, box, event_type, before_3ds)

    detail = await shop.order(placed.id)
    assert detail["state"] == "action_required"
    assert detail["next_action"] == link  # the shopper can still authenticate
    assert detail["payment_attempts"][0]["state"] == "action_required"
    assert any("ignored pending" in n for n in notes(detail))
    assert states(detail)[-1] == ("payment_pending", "action_required")


@pytest.mark.parametrize("event_type", ["refund.updated", "charge.refund.updated", "refund.failed"])
async def test_a_refund_failing_after_the_order_is_refunded_is_flagged_never_dropped(
    shop: Shop, box: Sandbox, event_type: str
) -> None:
    placed = await shop.placed(VISA)
    refunded = await shop.client.post(f"/v1/orders/{placed.id}/refund", json={})
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["state"] == "refunded"
    [refund] = (await box.ledger())["refunds"]
    failed = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}

    await deliver(shop, box, event_type, failed)

    detail = await shop.order(placed.id)
    assert detail["state"] == "refunded"  # the state never moves back
    assert detail["flag_reason"].startswith(f"refund failed: refund {refund['id']}")
    assert "expired_or_canceled_card" in detail["flag_reason"]
    flagged = [e for e in detail["timeline"] if e["kind"] == "flagged"]
    assert [(e["cause"], e["note"]) for e in flagged] == [("webhook", detail["flag_reason"])]


async def test_a_pending_refund_update_changes_nothing(shop: Shop, box: Sandbox) -> None:
    placed = await shop.placed(VISA)
    assert (await shop.client.post(f"/v1/orders/{placed.id}/refund", json={})).status_code == 200
    [refund] = (await box.ledger())["refunds"]
    before = await shop.order(placed.id)

    await deliver(shop, box, "refund.updated", {**refund, "status": "pending"})

    after = await shop.order(placed.id)
    assert (after["state"], after["flag_reason"]) == ("refunded", None)
    assert after["timeline"] == before["timeline"]


async def test_a_refund_call_without_an_answer_is_on_the_timeline_and_safe_to_repeat(
    shop: Shop, box: Sandbox
) -> None:
    placed = await shop.placed(VISA)
    await box.script(status=500, type="api_error", should_retry="false", after=True)

    lost = await shop.client.post(f"/v1/orders/{placed.id}/refund", json={})

    assert lost.status_code == 503, lost.text
    detail = await shop.order(placed.id)
    assert detail["state"] == "paid"
    assert "refund request at sandbox got no answer" in notes(detail)[-1]
    [made] = (await box.ledger())["refunds"]  # Stripe made it; only the answer was an error

    again = await shop.client.post(f"/v1/orders/{placed.id}/refund", json={})

    assert again.status_code == 200, again.text
    assert again.json()["state"] == "refunded"
    assert (await box.ledger())["refunds"] == [made]  # the same key: refunded once
