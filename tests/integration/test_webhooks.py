"""The webhook inbox (POST /v1/webhooks/{provider}) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orderguard.domain.order import Order
from orderguard.providers.base import PaymentOutcome, PaymentResult, ProviderOutcomeUnknown
from orderguard.services import settling
from orderguard.services.clock import Clock, system_clock
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.ports import WebhookRecord
from tests.integration.conftest import Api
from tests.integration.test_payments_api import THREE_DS, VISA, place

Webhook = tuple[bytes, dict[str, str]]


async def deliver(api: Api, webhook: Webhook, provider: str = "memory") -> httpx.Response:
    body, headers = webhook
    return await api.client.post(f"/v1/webhooks/{provider}", content=body, headers=headers)


async def detail(api: Api, order_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def by_webhook(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Timeline entries caused by a webhook."""
    return [e for e in document["timeline"] if e["cause"] == "webhook"]


async def inbox(api: Api) -> list[WebhookRecord]:
    async with api.container.storage() as uow:
        return await uow.webhooks.recent(limit=50)


def payment_of(api: Api, order: dict[str, Any]) -> PaymentResult:
    """The provider's current view of the order's (only) payment."""
    ref = order["payment_attempts"][-1]["provider_ref"]
    return api.provider.payments[ref].result


async def awaiting_3ds(api: Api) -> tuple[dict[str, Any], PaymentResult]:
    order = await place(api, THREE_DS)
    assert order["state"] == "action_required"
    return order, payment_of(api, order)


def failed_webhook(api: Api, payment: PaymentResult) -> Webhook:
    declined = replace(payment, outcome=PaymentOutcome.FAILED, decline_code="card_declined")
    return api.provider.signed_webhook("payment_intent.payment_failed", payment=declined)


async def test_3ds_completed_by_webhook_alone_pays_the_order(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    response = await deliver(api, api.provider.webhooks[-1])
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    [change] = by_webhook(document)
    assert (change["from_state"], change["to_state"]) == ("action_required", "paid")
    [record] = await inbox(api)
    assert (record.order_id, record.type, record.last_error) == (
        order["id"],
        "payment_intent.succeeded",
        None,
    )
    assert record.processed_at is not None and record.received_at <= record.processed_at
    assert "stripe-signature" in {k.lower() for k in record.headers}


async def test_a_forged_signature_is_refused_and_nothing_is_stored(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    paid = replace(payment, outcome=PaymentOutcome.SUCCEEDED, redirect_url=None)
    body, headers = api.provider.signed_webhook("payment_intent.succeeded", payment=paid)
    forged = body.replace(b'"succeeded"', b'"succeeded" ')
    response = await deliver(api, (forged, headers))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/invalid-webhook-signature"
    assert await inbox(api) == []
    assert api.container.inbox.rejected == 1
    assert (await detail(api, order["id"]))["state"] == "action_required"


async def test_a_stale_timestamp_is_refused(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    paid = replace(payment, outcome=PaymentOutcome.SUCCEEDED, redirect_url=None)
    old = int(time.time()) - 3600
    stale = api.provider.signed_webhook("payment_intent.succeeded", payment=paid, timestamp=old)
    response = await deliver(api, stale)
    assert response.status_code == 400
    assert "tolerance" in response.json()["detail"]
    assert await inbox(api) == []
    assert (await detail(api, order["id"]))["state"] == "action_required"


async def test_an_unknown_provider_is_404_and_an_oversized_body_413(api: Api) -> None:
    webhook = api.provider.webhooks[-1] if api.provider.webhooks else (b"{}", {})
    assert (await deliver(api, webhook, provider="nobody")).status_code == 404
    huge = await api.client.post("/v1/webhooks/memory", content=b"x" * (256 * 1024 + 1))
    assert huge.status_code == 413
    assert await inbox(api) == []


async def test_a_replayed_event_is_acknowledged_and_applied_once(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    webhook = api.provider.webhooks[-1]
    first, again = await deliver(api, webhook), await deliver(api, webhook)
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert len(await inbox(api)) == 1
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert len(by_webhook(document)) == 1


async def test_a_delivery_duplicated_at_the_same_moment_is_stored_once(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    webhook = api.provider.webhooks[-1]
    answers = await asyncio.gather(deliver(api, webhook), deliver(api, webhook))
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True]
    assert len(await inbox(api)) == 1
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert len([e for e in by_webhook(document) if e["kind"] == "state_changed"]) == 1


async def test_a_late_failure_webhook_never_unpays_an_order(api: Api) -> None:
    order, payment = await awaiting_3ds(api)
    sent_first = failed_webhook(api, payment)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    sent_second = api.provider.webhooks[-1]
    assert (await deliver(api, sent_second)).status_code == 200
    assert (await deliver(api, sent_first)).status_code == 200
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert document["payment_attempts"][0]["state"] == "succeeded"
    change, note = by_webhook(document)
    assert (change["kind"], change["to_state"]) == ("state_changed", "paid")
    assert (note["kind"], note["to_state"]) == ("note", "paid")
    assert "ignored failed" in note["note"]
    assert [r.processed_at is not None for r in await inbox(api)] == [True, True]


async def test_an_event_for_an_attempt_we_do_not_know_is_checked_with_the_provider(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
    order = await place(api, VISA)
    assert order["state"] == "payment_unknown"
    [real] = [p.result for p in api.provider.payments.values()]
    forged = replace(
        real, outcome=PaymentOutcome.FAILED, attempt_id="pay_unknown", provider_ref="mem_pi_x"
    )
    webhook = api.provider.signed_webhook("payment_intent.payment_failed", payment=forged)
    assert (await deliver(api, webhook)).status_code == 200
    document = await detail(api, order["id"])
    assert document["state"] == "paid"  # the provider's truth, not the event's claim
    assert document["payment_attempts"][0]["provider_ref"] == real.provider_ref
    notes = [e["note"] for e in by_webhook(document)]
    assert any("do not know" in n and "asking memory" in n for n in notes)


async def test_an_event_for_an_order_we_do_not_have_is_left_to_the_sweep(api: Api) -> None:
    order = await place(api, VISA)
    stranger = replace(payment_of(api, order), order_id="ord_nobody", attempt_id="pay_nobody")
    webhook = api.provider.signed_webhook("payment_intent.succeeded", payment=stranger)
    assert (await deliver(api, webhook)).status_code == 200
    [record] = [r for r in await inbox(api) if r.order_id == "ord_nobody"]
    assert (record.processed_at is not None, record.last_error) == (True, None)
    assert (await detail(api, order["id"]))["state"] == "paid"


async def test_a_failed_processing_is_recorded_and_retried_later(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, payment = await awaiting_3ds(api)
    apply_answers = settling.apply_answers  # how every settling applies an answer
    failures = iter([RuntimeError("database hiccup")])

    def flaky(order: Order, *args: Any, **kwargs: Any) -> None:
        for exc in failures:
            raise exc
        apply_answers(order, *args, **kwargs)

    monkeypatch.setattr(settling, "apply_answers", flaky)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    assert (await deliver(api, api.provider.webhooks[-1])).status_code == 200
    [failed] = await inbox(api)
    assert (failed.processed_at, failed.attempts) == (None, 1)
    assert failed.last_error == "RuntimeError: database hiccup"
    assert failed.next_attempt_at is not None and failed.next_attempt_at > failed.received_at
    assert (await detail(api, order["id"]))["state"] == "action_required"

    c = api.container

    def inbox_at(clock: Clock) -> WebhookInbox:
        events = WebhookEvents(c.storage, c.payments, c.recheck, clock=clock)
        return WebhookInbox(c.storage, c.payments.providers, events.apply, clock=clock)

    assert await inbox_at(system_clock).process_due(owner="w") == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    worker = inbox_at(lambda: later)
    assert await worker.process_due(owner="w") == 1
    [done] = await inbox(api)
    assert (done.processed_at, done.last_error, done.attempts) == (later, None, 2)
    assert done.received_at == failed.received_at < later
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert len(by_webhook(document)) == 1
    assert await worker.process_due(owner="w") == 0


async def test_a_full_refund_made_at_the_provider_refunds_the_order(api: Api) -> None:
    order = await place(api, VISA)
    ref = str(order["payment_attempts"][0]["provider_ref"])
    sent = len(api.provider.webhooks)
    await api.provider.refund(ref, amount=None, idempotency_key="refund-1")
    for webhook in api.provider.webhooks[sent:]:  # refund.created, then charge.refunded
        assert (await deliver(api, webhook)).status_code == 200
    document = await detail(api, order["id"])
    assert document["state"] == "refunded"
    assert document["payment_attempts"][0]["state"] == "refunded"
    assert (document["amount_refunded"], document["amount_refundable"]) == (
        order["amount_total"],
        0,
    )
    [change] = [e for e in by_webhook(document) if e["kind"] == "state_changed"]
    assert (change["from_state"], change["to_state"]) == ("paid", "refunded")


async def test_a_partial_refund_made_at_the_provider_keeps_the_order_paid(api: Api) -> None:
    order = await place(api, VISA)
    ref = str(order["payment_attempts"][0]["provider_ref"])
    sent = len(api.provider.webhooks)
    await api.provider.refund(ref, amount=100, idempotency_key="refund-part")
    for webhook in api.provider.webhooks[sent:]:
        assert (await deliver(api, webhook)).status_code == 200
    document = await detail(api, order["id"])
    assert (document["state"], document["payment_attempts"][0]["state"]) == ("paid", "succeeded")
    assert (document["amount_refunded"], document["partially_refunded"]) == (100, True)
    assert all(e["kind"] == "note" for e in by_webhook(document))
    assert any("partial refund" in e["note"] for e in by_webhook(document))
