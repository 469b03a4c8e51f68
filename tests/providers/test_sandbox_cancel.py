"""Cancelling a PaymentIntent at the sandbox: Stripe's shapes, the 3-D Secure page, faults.

Also the Stripe adapter against a stub answering the way real Stripe does where the sandbox
is kinder (real Stripe refuses to cancel an already canceled intent with a 400).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderguard.providers.base import PaymentOutcome, ProviderServerError
from orderguard.providers.resilience import RetryingProvider, RetryPolicy
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import serve_in_thread
from tests.providers.conftest import charge_request
from tests.providers.harness import API_KEY, SECRET
from tests.providers.sandbox_client import AUTH, charges_for, fault_counts, ledger, set_faults

FORM = re.compile(r'<form method="post" action="([^"]+)">')


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as client:
        yield client


async def _intent(http: httpx.AsyncClient, method: str, order_id: str = "ord_c") -> dict[str, Any]:
    response = await http.post(
        "/v1/payment_intents",
        data={
            "amount": "2599",
            "currency": "eur",
            "payment_method": method,
            "confirm": "true",
            "return_url": "https://shop.test/return",
            "metadata[order_id]": order_id,
        },
    )
    assert response.status_code in (200, 402), response.text
    body: dict[str, Any] = response.json()
    return body.get("error", {}).get("payment_intent") or body


async def test_cancel_answers_the_canceled_intent_with_its_reason(
    http: httpx.AsyncClient,
) -> None:
    intent = await _intent(http, "pm_card_authenticationRequired")
    response = await http.post(
        f"/v1/payment_intents/{intent['id']}/cancel", data={"cancellation_reason": "abandoned"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["object"], body["status"]) == (
        intent["id"],
        "payment_intent",
        "canceled",
    )
    assert body["cancellation_reason"] == "abandoned"
    assert body["canceled_at"] is not None and body["next_action"] is None
    # a second cancel (another request, no key) is refused as Stripe does, carrying the intent
    again = await http.post(f"/v1/payment_intents/{intent['id']}/cancel")
    assert again.status_code == 400
    error = again.json()["error"]
    assert (error["type"], error["code"]) == (
        "invalid_request_error",
        "payment_intent_unexpected_state",
    )
    assert "status of canceled" in error["message"]
    assert error["payment_intent"]["status"] == "canceled"
    assert error["payment_intent"]["canceled_at"] == body["canceled_at"]


async def test_cancel_of_a_succeeded_intent_is_a_400_carrying_the_intent(
    http: httpx.AsyncClient,
) -> None:
    intent = await _intent(http, "pm_card_visa")
    response = await http.post(f"/v1/payment_intents/{intent['id']}/cancel")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (
        "invalid_request_error",
        "payment_intent_unexpected_state",
    )
    assert "status of succeeded" in error["message"]
    assert error["payment_intent"]["id"] == intent["id"]
    assert error["payment_intent"]["status"] == "succeeded"
    assert len(await charges_for(str(http.base_url), "ord_c")) == 1


async def test_cancel_of_a_declined_intent_and_of_an_unknown_one(http: httpx.AsyncClient) -> None:
    intent = await _intent(http, "pm_card_chargeDeclined")
    assert intent["status"] == "requires_payment_method"
    response = await http.post(f"/v1/payment_intents/{intent['id']}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "canceled")
    missing = await http.post("/v1/payment_intents/pi_nope/cancel")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


async def test_an_unknown_cancellation_reason_is_refused(http: httpx.AsyncClient) -> None:
    intent = await _intent(http, "pm_card_authenticationRequired")
    response = await http.post(
        f"/v1/payment_intents/{intent['id']}/cancel", data={"cancellation_reason": "bored"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cancellation_reason"
    retrieved = await http.get(f"/v1/payment_intents/{intent['id']}")
    assert retrieved.json()["status"] == "requires_action"


async def test_cancel_honours_the_idempotency_key(http: httpx.AsyncClient) -> None:
    intent = await _intent(http, "pm_card_authenticationRequired")
    path = f"/v1/payment_intents/{intent['id']}/cancel"
    first = await http.post(path, headers={"Idempotency-Key": "k-cancel"})
    second = await http.post(path, headers={"Idempotency-Key": "k-cancel"})
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    other = await http.post(
        path, headers={"Idempotency-Key": "k-cancel"}, data={"cancellation_reason": "duplicate"}
    )
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


async def test_after_cancel_the_3ds_page_says_so_and_approving_charges_nothing(
    http: httpx.AsyncClient,
) -> None:
    intent = await _intent(http, "pm_card_authenticationRequired", order_id="ord_late")
    url = intent["next_action"]["redirect_to_url"]["url"]
    before = await http.get(url)
    assert len(FORM.findall(before.text)) == 2
    await http.post(f"/v1/payment_intents/{intent['id']}/cancel")

    page = await http.get(url)
    assert page.status_code == 200
    assert "cancelled" in page.text and FORM.findall(page.text) == []
    for verb in ("approve", "refuse"):
        pressed = await http.post(f"/3ds/{intent['id']}/{verb}")
        assert pressed.status_code == 409
        assert "cancelled" in pressed.text

    assert await charges_for(str(http.base_url), "ord_late") == []
    book = await ledger(str(http.base_url))
    [stored] = [pi for pi in book["payment_intents"] if pi["id"] == intent["id"]]
    assert stored["status"] == "canceled"
    assert [c for c in book["charges"] if c["payment_intent"] == intent["id"]] == []


async def test_a_500_after_the_cancel_is_retried_to_the_cancelled_answer(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    pending = await stripe_provider.create_payment(
        charge_request(method="pm_card_authenticationRequired")
    )
    assert pending.provider_ref is not None
    await set_faults(sandbox_url, error_after=1.0)
    with pytest.raises(ProviderServerError):
        await stripe_provider.cancel_payment(pending.provider_ref)
    await set_faults(sandbox_url, error_after=1.0, limit=1)

    async def no_sleep(_: float) -> None:
        return None

    retrying = RetryingProvider(stripe_provider, policy=RetryPolicy(attempts=3), sleep=no_sleep)
    cancelled = await retrying.cancel_payment(pending.provider_ref)
    assert cancelled.outcome is PaymentOutcome.FAILED
    assert (await fault_counts(sandbox_url))["error_after"] == 2


#: Canned PaymentIntents of the stub below, by id.
_STUB_INTENTS = {
    "pi_canceled": {"id": "pi_canceled", "object": "payment_intent", "status": "canceled"},
    "pi_bare": {"id": "pi_bare", "object": "payment_intent", "status": "succeeded"},
}


def _stub() -> Starlette:
    """Real Stripe's answers to cancelling what can no longer be cancelled."""

    async def cancel(request: Request) -> JSONResponse:
        intent = _STUB_INTENTS[request.path_params["intent"]]
        error: dict[str, Any] = {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": f"You cannot cancel this PaymentIntent: status {intent['status']}.",
        }
        if intent["id"] != "pi_bare":
            error["payment_intent"] = {**intent, "amount": 100, "currency": "eur"}
        return JSONResponse({"error": error}, status_code=400)

    async def retrieve(request: Request) -> JSONResponse:
        intent = _STUB_INTENTS[request.path_params["intent"]]
        return JSONResponse({**intent, "amount": 100, "currency": "eur"})

    return Starlette(
        routes=[
            Route("/v1/payment_intents/{intent}/cancel", cancel, methods=["POST"]),
            Route("/v1/payment_intents/{intent}", retrieve, methods=["GET"]),
        ]
    )


@pytest.fixture
def stub_url() -> Iterator[str]:
    with serve_in_thread(_stub()) as url:
        yield url


async def test_the_adapter_maps_an_unexpected_state_to_the_intent_as_it_stands(
    stub_url: str,
) -> None:
    provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=stub_url)
    try:
        canceled = await provider.cancel_payment("pi_canceled")
        assert (canceled.outcome, canceled.provider_ref) == (PaymentOutcome.FAILED, "pi_canceled")
        bare = await provider.cancel_payment("pi_bare")  # no intent in the error: retrieved
        assert (bare.outcome, bare.provider_ref) == (PaymentOutcome.SUCCEEDED, "pi_bare")
    finally:
        await provider.aclose()
