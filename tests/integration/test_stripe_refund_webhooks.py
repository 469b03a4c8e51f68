"""Refund webhooks in Stripe's current shapes (API 2022-11-15 and later), built by hand
from Stripe's OpenAPI description (schemas ``refund`` and ``charge``): ``charge.refunded``
carries the cumulative ``amount_refunded`` and no list of refunds; each refund comes as a
Refund object in ``refund.created`` / ``refund.updated``."""

from __future__ import annotations

from typing import Any

from orderguard.providers.base import ProviderOutcomeUnknown
from orderguard.providers.stripe import mapping as stripe_mapping
from orderguard.services.webhook_events import WebhookEvents
from tests.integration.conftest import Api
from tests.integration.test_payments_api import place

CREATED = 1_764_000_000


def refund_object(
    refund_id: str,
    payment_intent: str,
    amount: int,
    status: str,
    *,
    metadata: dict[str, str] | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """A Refund with the fields the OpenAPI description marks required, and those we read."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "created": CREATED,
        "currency": "eur",
        "charge": "ch_3Oabc",
        "payment_intent": payment_intent,
        "status": status,
        "failure_reason": failure_reason,
        "metadata": metadata or {},
        "reason": None,
    }


def charge_object(payment_intent: str, amount: int, amount_refunded: int) -> dict[str, Any]:
    """A Charge as ``charge.refunded`` sends it now: no ``refunds`` list."""
    return {
        "id": "ch_3Oabc",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "billing_details": {},
        "captured": True,
        "created": CREATED,
        "currency": "eur",
        "disputed": False,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": payment_intent,
        "refunded": amount_refunded == amount,
        "status": "succeeded",
    }


def event(event_id: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2023-10-16",
        "created": CREATED,
        "type": kind,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def test_charge_refunded_is_read_as_a_cumulative_amount_not_a_list() -> None:
    parsed = stripe_mapping.webhook_event(
        event("evt_1", "charge.refunded", charge_object("pi_1", 5000, 1500))
    )
    assert parsed.refund is None and parsed.payment is None
    assert parsed.charge is not None
    assert (parsed.charge.provider_ref, parsed.charge.amount_refunded) == ("pi_1", 1500)


def test_an_old_refunds_list_in_charge_refunded_is_not_read() -> None:
    old = charge_object("pi_1", 5000, 5000)
    old["refunds"] = {
        "object": "list",
        "data": [refund_object("re_old", "pi_1", 5000, "succeeded")],
    }
    parsed = stripe_mapping.webhook_event(event("evt_1", "charge.refunded", old))
    assert parsed.refund is None  # one refund is one refund.* event, never counted twice


def test_refund_events_carry_the_refund_with_our_metadata() -> None:
    obj = refund_object(
        "re_1",
        "pi_1",
        700,
        "failed",
        metadata={"refund_id": "rfd_1"},
        failure_reason="expired_or_canceled_card",
    )
    parsed = stripe_mapping.webhook_event(event("evt_1", "refund.updated", obj))
    assert parsed.refund is not None
    made = parsed.refund
    assert (made.refund_ref, made.provider_ref, made.amount, made.currency) == (
        "re_1",
        "pi_1",
        700,
        "EUR",
    )
    assert (made.status, made.failure_reason) == ("failed", "expired_or_canceled_card")
    assert made.metadata == {"refund_id": "rfd_1"}


async def apply(api: Api, stripe_event: dict[str, Any]) -> None:
    events = WebhookEvents(api.container.storage, api.container.payments, api.container.recheck)
    await events.apply("memory", stripe_mapping.webhook_event(stripe_event))


async def test_a_dashboard_refund_is_recorded_once_however_often_it_is_reported(
    api: Api,
) -> None:
    order = await place(api)
    pi, total = order["payment_attempts"][0]["provider_ref"], order["amount_total"]
    created = event("evt_1", "refund.created", refund_object("re_dash", pi, 1000, "succeeded"))
    cumulative = event("evt_2", "charge.refunded", charge_object(pi, total, 1000))
    for stripe_event in (cumulative, created, created, cumulative):  # late, repeated
        await apply(api, stripe_event)
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    [made] = detail["refunds"]
    assert (made["provider_ref"], made["amount"], made["state"]) == ("re_dash", 1000, "succeeded")
    assert made["requester"] == "provider"
    assert (detail["amount_refunded"], detail["partially_refunded"]) == (1000, True)
    notes = [e["note"] for e in detail["timeline"] if e["cause"] == "webhook"]
    assert sum("orderguard knows 0" in n for n in notes) == 1  # the early charge.refunded


async def test_our_refund_failing_later_lowers_what_was_refunded_and_flags(api: Api) -> None:
    order = await place(api)
    pi, total = order["payment_attempts"][0]["provider_ref"], order["amount_total"]
    answer = await api.client.post(
        f"/v1/orders/{order['id']}/refunds", json={}, headers={"Idempotency-Key": "all"}
    )
    made = answer.json()["refund"]
    assert answer.json()["state"] == "refunded"
    failed = refund_object(
        made["provider_ref"],
        pi,
        total,
        "failed",
        metadata={"refund_id": made["id"]},
        failure_reason="expired_or_canceled_card",
    )
    late_success = refund_object(
        made["provider_ref"], pi, total, "succeeded", metadata={"refund_id": made["id"]}
    )
    await apply(api, event("evt_f", "refund.updated", failed))
    await apply(api, event("evt_s", "refund.created", late_success))  # out of order
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    [refund] = detail["refunds"]
    assert (refund["state"], refund["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert (detail["state"], detail["amount_refunded"], detail["amount_refundable"]) == (
        "refunded",
        0,
        total,
    )
    assert [f["reason"] for f in detail["flags"] if f["cleared_at"] is None] == ["refund_failed"]


async def test_a_webhook_overtaking_our_refunds_answer_is_counted_once(api: Api) -> None:
    order = await place(api)
    pi = order["payment_attempts"][0]["provider_ref"]
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    path = f"/v1/orders/{order['id']}/refunds"
    lost = await api.client.post(path, json={"amount": 700}, headers={"Idempotency-Key": "k"})
    assert lost.status_code == 503
    [made] = api.provider.refunds
    # a provider that drops our metadata, and its event arrives before we learn the answer
    await apply(
        api, event("evt_1", "refund.created", refund_object(made.refund_ref, pi, 700, "succeeded"))
    )
    again = await api.client.post(path, json={"amount": 700}, headers={"Idempotency-Key": "k"})
    assert again.status_code == 200, again.text
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["amount_refunded"] == 700
    assert detail["amount_refundable"] == order["amount_total"] - 700
    states = sorted((r["requester"], r["state"]) for r in detail["refunds"])
    assert states == [("api:local", "succeeded"), ("provider", "failed")]
    assert [f for f in detail["flags"] if f["cleared_at"] is None] == []
