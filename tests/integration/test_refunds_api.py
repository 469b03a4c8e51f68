"""Refunds as records over HTTP: one per Idempotency-Key, sums that add up, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from orderguard.domain.events import Cause
from orderguard.domain.money import AmountRule
from orderguard.providers.base import ProviderOutcomeUnknown, ProviderUnavailable
from orderguard.services.operations import Operations
from tests.integration.conftest import Api
from tests.integration.test_payments_api import place


async def refund(api: Api, order_id: str, key: str | None = None, **body: Any) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.client.post(f"/v1/orders/{order_id}/refunds", json=body, headers=headers)


async def detail(api: Api, order_id: str) -> dict[str, Any]:
    document: dict[str, Any] = (await api.client.get(f"/v1/orders/{order_id}")).json()
    return document


def succeeded_at_provider(api: Api) -> list[int]:
    return [r.amount for r in api.provider.refunds if r.status == "succeeded"]


async def test_a_retried_idempotency_key_is_one_refund(api: Api) -> None:
    order = await place(api)
    first = await refund(api, order["id"], "rf-1", amount=300, reason="damaged box")
    again = await refund(api, order["id"], "rf-1", amount=300, reason="damaged box")
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["refund"]["id"] == again.json()["refund"]["id"]
    assert first.json()["refund"]["state"] == "succeeded"
    assert first.json()["refund"]["reason"] == "damaged box"
    assert first.json()["refund"]["requester"] == "api:local"
    assert succeeded_at_provider(api) == [300]
    document = await detail(api, order["id"])
    assert [r["amount"] for r in document["refunds"]] == [300]
    assert document["amount_refunded"] == 300


async def test_two_keys_are_two_refunds_even_of_the_same_amount(api: Api) -> None:
    order = await place(api)
    one = await refund(api, order["id"], "rf-a", amount=300)
    two = await refund(api, order["id"], "rf-b", amount=300)
    assert (one.status_code, two.status_code) == (201, 201), two.text
    assert one.json()["refund"]["id"] != two.json()["refund"]["id"]
    assert succeeded_at_provider(api) == [300, 300]
    document = await detail(api, order["id"])
    assert (document["amount_refunded"], document["state"]) == (600, "paid")
    assert document["amount_refundable"] == order["amount_total"] - 600
    assert document["partially_refunded"] is True


async def test_a_key_reused_for_another_amount_is_refused(api: Api) -> None:
    order = await place(api)
    await refund(api, order["id"], "rf-1", amount=300)
    other = await refund(api, order["id"], "rf-1", amount=400)
    assert (other.status_code, other.json()["type"]) == (422, "/problems/idempotency-key-reused")
    assert succeeded_at_provider(api) == [300]


async def test_an_over_refund_is_refused_naming_what_is_left(api: Api) -> None:
    order = await place(api)
    total = order["amount_total"]
    await refund(api, order["id"], "rf-1", amount=500)
    too_much = await refund(api, order["id"], "rf-2", amount=total)
    assert too_much.status_code == 409
    problem = too_much.json()
    assert problem["type"] == "/problems/refund-exceeds-refundable"
    assert (problem["amount_refundable"], problem["currency"]) == (total - 500, "EUR")
    assert problem["order_id"] == order["id"]
    assert f"only {total - 500} EUR left" in problem["detail"]
    assert succeeded_at_provider(api) == [500]
    assert len((await detail(api, order["id"]))["refunds"]) == 1  # nothing stored for it


async def test_a_partial_refund_then_the_rest_refunds_the_order(api: Api) -> None:
    order = await place(api)
    total = order["amount_total"]
    part = await refund(api, order["id"], "rf-1", amount=500, reason="one item back")
    assert (part.json()["state"], part.json()["partially_refunded"]) == ("paid", True)
    rest = await refund(api, order["id"], "rf-2", reason="the rest")
    assert rest.status_code == 201, rest.text
    assert rest.json()["refund"]["amount"] == total - 500
    document = await detail(api, order["id"])
    assert (document["state"], document["partially_refunded"]) == ("refunded", False)
    assert (document["amount_refunded"], document["amount_refundable"]) == (total, 0)
    assert document["payment_attempts"][0]["state"] == "refunded"
    assert succeeded_at_provider(api) == [500, total - 500]
    nothing_left = await refund(api, order["id"], "rf-3", amount=1)
    assert nothing_left.json()["amount_refundable"] == 0


async def test_the_first_refund_route_still_refunds_in_full_with_a_reason(api: Api) -> None:
    order = await place(api)
    response = await api.client.post(
        f"/v1/orders/{order['id']}/refund", json={"reason": "cancelled by phone"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "refunded"
    assert response.json()["refund"]["reason"] == "cancelled by phone"
    assert succeeded_at_provider(api) == [order["amount_total"]]


async def test_a_reason_with_control_characters_or_too_long_is_refused(api: Api) -> None:
    order = await place(api)
    bad = await refund(api, order["id"], "rf-1", amount=100, reason="a\x00b")
    long = await refund(api, order["id"], "rf-2", amount=100, reason="x" * 501)
    assert (bad.status_code, bad.json()["errors"][0]["loc"]) == (422, ["reason"])
    assert (long.status_code, long.json()["errors"][0]["loc"]) == (422, ["reason"])
    assert api.provider.refunds == []


async def test_a_lost_answer_leaves_the_refund_pending_and_a_retry_makes_it_once(
    api: Api,
) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
    lost = await refund(api, order["id"], "rf-1", amount=700)
    assert lost.status_code == 503, lost.text
    [pending] = (await detail(api, order["id"]))["refunds"]
    assert (pending["state"], pending["amount"]) == ("pending", 700)
    # the answer names the refund and warns that a new refund could refund twice
    said = lost.json()["detail"]
    assert pending["id"] in said and "do not ask for a new refund" in said
    assert "nothing was changed" not in said
    held = await detail(api, order["id"])
    assert held["amount_refundable"] == order["amount_total"] - 700  # pending counts
    assert succeeded_at_provider(api) == [700]  # the provider did make it
    again = await refund(api, order["id"], "rf-1", amount=700)
    assert again.status_code == 200, again.text
    assert again.json()["refund"]["id"] == pending["id"]
    assert again.json()["refund"]["state"] == "succeeded"
    assert succeeded_at_provider(api) == [700]  # same provider key: not made twice


async def test_the_worker_resends_a_refund_the_provider_never_got(api: Api) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    assert (await refund(api, order["id"], "rf-1", amount=700)).status_code == 503
    assert api.provider.refunds == []
    sent = await api.container.operations.retry_refunds(older_than=timedelta(0))
    assert sent == 1
    [made] = (await detail(api, order["id"]))["refunds"]
    assert made["state"] == "succeeded"
    assert succeeded_at_provider(api) == [700]
    assert await api.container.operations.retry_refunds(older_than=timedelta(0)) == 0


async def test_a_declined_refund_is_failed_flagged_and_gives_nothing_back(api: Api) -> None:
    order = await place(api)
    api.provider.decline_next_refund("insufficient_funds")
    response = await refund(api, order["id"], "rf-1", amount=700)
    assert response.status_code == 201, response.text
    made = response.json()["refund"]
    assert (made["state"], made["failure_reason"]) == ("failed", "insufficient_funds")
    document = await detail(api, order["id"])
    assert (document["amount_refunded"], document["amount_refundable"]) == (
        0,
        order["amount_total"],
    )
    assert [f["reason"] for f in document["flags"]] == ["refund_failed"]


def later_operations(api: Api, by: timedelta) -> Operations:
    """The container's operations, with a clock ``by`` ahead."""
    return Operations(
        api.container.storage,
        api.container.payments,
        clock=lambda: datetime.now(UTC) + by,
    )


async def provider_says_pending(api: Api, order_id: str) -> None:
    """As if the provider had answered the order's refund with ``pending`` (processing)."""
    async with api.container.storage() as uow:
        order = await uow.orders.get(order_id, for_update=True)
        assert order is not None
        order.refunds[0].provider_ref = "re_processing"
        await uow.orders.save(order)
        await uow.commit()


async def test_an_unanswered_refund_too_old_to_resend_is_flagged_not_sent(api: Api) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    await refund(api, order["id"], "rf-1", amount=700)
    later = later_operations(api, timedelta(hours=23))
    assert await later.retry_refunds(older_than=timedelta(0)) == 0
    assert await later.retry_refunds(older_than=timedelta(0)) == 0
    document = await detail(api, order["id"])
    assert api.provider.refunds == []  # its key may be forgotten: a resend could refund twice
    assert document["refunds"][0]["state"] == "pending"
    [flag] = document["flags"]  # flagged once
    assert flag["reason"] == "refund_failed" and "look it up there" in flag["detail"]


async def test_a_refund_the_provider_keeps_pending_is_flagged_only_after_days(api: Api) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    await refund(api, order["id"], "rf-1", amount=700)
    await provider_says_pending(api, order["id"])
    assert await later_operations(api, timedelta(days=2)).retry_refunds() == 0
    assert (await detail(api, order["id"]))["flags"] == []
    assert await later_operations(api, timedelta(days=11)).retry_refunds() == 0
    [flag] = (await detail(api, order["id"]))["flags"]
    assert "re_processing" in flag["detail"]
    assert api.provider.refunds == []


async def test_a_repeat_after_the_key_may_be_forgotten_is_never_sent_again(api: Api) -> None:
    """The client repeats its request (same Idempotency-Key) a day after the provider's
    answer was lost: the provider may have forgotten the key, so a resend could refund
    twice. Nothing is sent; the refund stays pending and the order is flagged."""
    order = await place(api)
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    await refund(api, order["id"], "rf-1", amount=700)
    async with api.container.storage() as uow:
        stored = await uow.orders.get(order["id"])
    assert stored is not None
    [first] = stored.refunds
    later = later_operations(api, timedelta(hours=25))
    answer = await later.request_refund(
        order["id"],
        amount=700,
        actor=first.requester,
        cause=Cause.API,
        reason="asked again",
        request_key=first.request_key,
    )
    assert api.provider.refunds == []
    assert answer.refund.state == "pending" and answer.replayed
    [flag] = (await detail(api, order["id"]))["flags"]
    assert flag["reason"] == "refund_failed" and "look it up there" in flag["detail"]


async def test_a_refund_amount_the_provider_cannot_write_is_refused_before_it_is_stored(
    api: Api,
) -> None:
    order = await place(api)
    # from here on the provider takes EUR only in tens of cents (as Stripe takes KWD in tens)
    api.provider.rules["EUR"] = AmountRule("EUR", True, 2, 2, 1, None, 10)
    refused = await refund(api, order["id"], "rf-1", amount=705)
    assert refused.status_code == 409, refused.text
    said = refused.json()["detail"]
    assert "multiples of 10" in said and "700 or 710" in said
    assert (await detail(api, order["id"]))["refunds"] == []  # nothing stored
    assert api.provider.refunds == []  # nothing sent
    made = await refund(api, order["id"], "rf-2", amount=700)
    assert made.status_code == 201, made.text
    assert succeeded_at_provider(api) == [700]
