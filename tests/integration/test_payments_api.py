"""Charging through the API (issue 3) with the in-memory provider as the oracle."""

from __future__ import annotations

from typing import Any

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
)
from orderguard.providers.memory import InMemoryProvider
from tests.factories import key, order_body
from tests.integration.conftest import Api

VISA, DECLINED, THREE_DS = (
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "pm_card_authenticationRequired",
)


async def place(api: Api, method: str | None = VISA, **changes: Any) -> dict[str, Any]:
    body = order_body(**changes)
    if method:
        body["payment"] = {"method": method}
    response = await api.client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def charges(provider: InMemoryProvider, order_id: str) -> list[Any]:
    """Successful payments the provider holds for the order."""
    return [
        p
        for p in provider.payments.values()
        if p.result.order_id == order_id and p.result.outcome is PaymentOutcome.SUCCEEDED
    ]


async def timeline(api: Api, order_id: str) -> list[tuple[str | None, str, str]]:
    detail = (await api.client.get(f"/v1/orders/{order_id}")).json()
    return [(e["from_state"], e["to_state"], e["note"]) for e in detail["timeline"]]


async def test_a_good_card_pays_the_order_before_the_answer(api: Api) -> None:
    order = await place(api)
    assert order["state"] == "paid"
    [attempt] = order["payment_attempts"]
    assert (attempt["state"], attempt["provider"], attempt["amount"]) == (
        "succeeded",
        "memory",
        order["amount_total"],
    )
    assert len(charges(api.provider, order["id"])) == 1
    states = [(f, t) for f, t, _ in await timeline(api, order["id"])]
    assert states == [
        (None, "received"),
        ("received", "payment_pending"),
        ("payment_pending", "paid"),
    ]
    async with api.container.storage() as uow:
        events = [e.type for e in await uow.orders.events(order["id"])]
    assert events == ["order.received", "order.paid"]


async def test_the_charge_carries_the_order_id_and_a_snapshot_for_recovery(api: Api) -> None:
    from orderguard.services.snapshot import restore_snapshot

    order = await place(api)
    [payment] = charges(api.provider, order["id"])
    metadata = dict(payment.result.metadata)
    assert metadata["order_id"] == order["id"]
    snapshot = restore_snapshot(metadata)
    assert snapshot is not None
    assert (snapshot["total"], snapshot["cur"]) == (order["amount_total"], "EUR")


async def test_a_declined_shopper_pays_again_with_another_method(api: Api) -> None:
    order = await place(api, DECLINED)
    assert order["state"] == "payment_failed"
    assert order["payment_attempts"][0]["decline_code"]
    headers = key()
    again = await api.client.post(
        f"/v1/orders/{order['id']}/payments", json={"payment": {"method": VISA}}, headers=headers
    )
    assert again.status_code == 201, again.text
    assert again.json()["state"] == "paid"
    assert [a["state"] for a in again.json()["payment_attempts"]] == ["failed", "succeeded"]
    replay = await api.client.post(
        f"/v1/orders/{order['id']}/payments", json={"payment": {"method": VISA}}, headers=headers
    )
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(charges(api.provider, order["id"])) == 1


async def test_a_paid_or_unknown_order_cannot_be_paid_again(api: Api) -> None:
    paid = await place(api)
    refused = await api.client.post(
        f"/v1/orders/{paid['id']}/payments", json={"payment": {"method": VISA}}, headers=key()
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/payment-not-allowed"
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    unknown = await place(api)
    assert unknown["state"] == "payment_unknown"
    refused = await api.client.post(
        f"/v1/orders/{unknown['id']}/payments", json={"payment": {"method": VISA}}, headers=key()
    )
    assert refused.status_code == 409
    assert len(charges(api.provider, unknown["id"])) == 1


async def test_a_lost_answer_is_unknown_and_resolved_by_asking_never_by_recharging(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("connection reset"), after_effect=True)
    order = await place(api)
    assert order["state"] == "payment_unknown"
    assert order["payment_attempts"][0]["state"] == "unknown"
    rechecked = await api.client.post(f"/v1/orders/{order['id']}/recheck", json={})
    assert rechecked.json()["state"] == "paid"
    assert len(charges(api.provider, order["id"])) == 1
    notes = [n for _, _, n in await timeline(api, order["id"])]
    assert any("answer lost after sending" in n for n in notes)


async def test_a_request_that_never_reached_the_provider_is_resent_with_the_same_key(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    order = await place(api)
    assert order["state"] == "payment_pending"
    assert api.provider.payments == {} or not charges(api.provider, order["id"])
    rechecked = await api.client.post(f"/v1/orders/{order['id']}/recheck", json={})
    assert rechecked.json()["state"] == "paid"
    [payment] = charges(api.provider, order["id"])
    assert payment.result.attempt_id == order["payment_attempts"][0]["id"]


async def test_a_request_the_provider_rejects_fails_cleanly(api: Api) -> None:
    api.provider.fail_next(ProviderRejected("No such payment_method"))
    order = await place(api)
    assert order["state"] == "payment_failed"
    assert order["payment_attempts"][0]["decline_code"] == "processing_error"


async def test_three_d_secure_moves_on_when_the_shopper_returns(api: Api) -> None:
    order = await place(api, THREE_DS)
    assert order["state"] == "action_required"
    redirect = order["next_action"]["redirect_url"]
    assert redirect
    ref = order["payment_attempts"][0]["provider_ref"]
    api.provider.complete_action(ref, approved=True)
    token = order["status_url"].split("token=")[1]
    wrong = await api.client.get(f"/orders/{order['id']}/return", params={"token": "nope"})
    assert wrong.status_code == 404
    back = await api.client.get(f"/orders/{order['id']}/return", params={"token": token})
    assert back.status_code == 303
    assert back.headers["location"] == order["status_url"]
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "paid"
    assert detail["timeline"][-1]["cause"] == "shopper"


async def test_a_refused_authentication_fails_the_order(api: Api) -> None:
    order = await place(api, THREE_DS)
    api.provider.complete_action(order["payment_attempts"][0]["provider_ref"], approved=False)
    token = order["status_url"].split("token=")[1]
    await api.client.get(f"/orders/{order['id']}/return", params={"token": token})
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "payment_failed"
    assert charges(api.provider, order["id"]) == []


class _LaggingSearch:
    """Makes the provider's search miss everything, as Stripe's lagging index may."""

    def __init__(self, provider: InMemoryProvider) -> None:
        self.provider, self.original = provider, provider.find_payments

    async def nothing(self, order_id: str) -> list[Any]:
        return []

    def __enter__(self) -> None:
        self.provider.find_payments = self.nothing  # type: ignore[method-assign]

    def __exit__(self, *_: object) -> None:
        self.provider.find_payments = self.original  # type: ignore[method-assign]


async def test_a_resend_while_search_lags_reuses_the_key_and_cannot_charge_twice(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    order = await place(api)
    assert order["state"] == "payment_unknown"
    with _LaggingSearch(api.provider):  # the provider's search does not see the charge yet
        rechecked = await api.client.post(f"/v1/orders/{order['id']}/recheck", json={})
    assert rechecked.json()["state"] == "paid"
    assert len(charges(api.provider, order["id"])) == 1
    assert len(api.provider.payments) == 1


async def test_a_client_retry_after_a_lost_answer_replays_and_never_recharges(api: Api) -> None:
    body, headers = order_body(payment={"method": VISA}), key()
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    first = await api.client.post("/v1/orders", json=body, headers=headers)
    retry = await api.client.post("/v1/orders", json=body, headers=headers)
    assert first.json()["state"] == "payment_unknown"
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert len(api.provider.payments) == 1


async def test_an_attempt_older_than_the_providers_key_memory_is_never_resent(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from orderguard.domain.events import Cause
    from orderguard.services.recheck import Recheck

    api.provider.fail_next(ProviderUnavailable("connection refused"))
    order = await place(api)
    assert order["state"] == "payment_pending"
    tomorrow = datetime.now(UTC) + timedelta(hours=24)
    late = Recheck(api.container.storage, api.container.payments, clock=lambda: tomorrow)
    after = await late.order(order["id"], cause=Cause.JANITOR)
    assert after.state == "payment_pending"
    assert api.provider.payments == {}


async def test_a_replay_never_takes_the_half_open_breakers_probe(api: Api) -> None:
    body, headers = order_body(payment={"method": VISA}), key()
    first = await api.client.post("/v1/orders", json=body, headers=headers)
    assert first.json()["state"] == "paid"
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    breaker._opened_at = -1e9  # the cool-down has passed: half-open, one probe allowed
    replay = await api.client.post("/v1/orders", json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert breaker.allow() is True  # the probe is still there for a real charge
