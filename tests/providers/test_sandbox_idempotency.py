"""The sandbox keeps Idempotency-Keys as Stripe does, seen through the real ``stripe`` SDK.

Stripe saves the first result of a key once its endpoint began, a 500 included, and
replays it for 24 hours; a key whose first request is still running is answered 409
``idempotency_key_in_use``; a key reused with other parameters is a 400
``idempotency_error``; after 24 hours the key is free again. Errors carry one of the four
types Stripe's OpenAPI description allows, and a 429 is Stripe's ``rate_limit``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderBusy,
    ProviderKeyConflict,
    ProviderRateLimited,
    ProviderServerError,
)
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.conftest import charge_request
from tests.providers.harness import API_KEY, SyncHttpxClient
from tests.providers.sandbox_client import (
    AUTH,
    charges_for,
    fault_kinds,
    ledger,
    script_answer,
    set_faults,
)

#: The error types Stripe's OpenAPI description (``api_errors.type``) allows, and no other.
STRIPE_ERROR_TYPES = {"api_error", "card_error", "idempotency_error", "invalid_request_error"}
#: A day of the sandbox's clock: how long Stripe keeps a key.
DAY_S = 24 * 3600


@pytest.fixture
def sdk(sandbox_url: str) -> Iterator[stripe.StripeClient]:
    """Stripe's own client pointed at the sandbox, sending every call once."""
    http = SyncHttpxClient()
    yield stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, http_client=http, max_network_retries=0
    )
    http.close()


def create_params(order_id: str, amount: int = 2599, method: str = "pm_card_visa") -> Any:
    return {
        "amount": amount,
        "currency": "eur",
        "payment_method": method,
        "confirm": True,
        "return_url": "https://shop.test/return",
        "metadata": {"order_id": order_id},
    }


def create(sdk: stripe.StripeClient, key: str, order_id: str, amount: int = 2599) -> Any:
    return sdk.v1.payment_intents.create(
        create_params(order_id, amount), options={"idempotency_key": key}
    )


async def advance(base_url: str, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post("/_sandbox/clock", json={"advance_s": seconds})
        assert response.status_code == 200, response.text


async def stripe_saves_a_500(base_url: str, how: str) -> None:
    """The next create charges, then Stripe fails and keeps its 500 under the key."""
    if how == "scripted":
        await script_answer(base_url, status=500, type="api_error", after=True, saved=True)
    else:
        await set_faults(base_url, error_saved=1.0, limit=1)


@pytest.mark.parametrize("how", ["scripted", "fault"])
async def test_a_500_stripe_saved_after_charging_is_replayed_for_the_same_key(
    sandbox_url: str, sdk: stripe.StripeClient, how: str
) -> None:
    await stripe_saves_a_500(sandbox_url, how)
    with pytest.raises(stripe.APIError) as first:
        create(sdk, "key-saved", "ord_saved")
    assert first.value.http_status == 500
    assert first.value.json_body is not None
    assert first.value.json_body["error"]["type"] == "api_error"
    assert len(await charges_for(sandbox_url, "ord_saved")) == 1  # it did charge
    assert "error_saved" in await fault_kinds(sandbox_url)

    for _ in range(2):  # same key: the saved 500, never the truth
        with pytest.raises(stripe.APIError) as again:
            create(sdk, "key-saved", "ord_saved")
        assert again.value.http_status == 500
        assert again.value.json_body == first.value.json_body
        headers = again.value.headers or {}
        assert headers.get("idempotent-replayed") == "true"
        assert headers.get("stripe-should-retry") == "false"
    assert len(await charges_for(sandbox_url, "ord_saved")) == 1


@pytest.mark.parametrize("how", ["scripted", "fault"])
async def test_after_a_saved_500_the_adapter_learns_the_truth_only_by_asking(
    sandbox_url: str, stripe_provider: StripeProvider, how: str
) -> None:
    request = charge_request()
    await stripe_saves_a_500(sandbox_url, how)
    with pytest.raises(ProviderServerError):
        await stripe_provider.create_payment(request)
    with pytest.raises(ProviderServerError) as retried:
        await stripe_provider.create_payment(request)
    assert retried.value.safe_to_retry is False  # Stripe said repeating it is useless
    [charged] = await charges_for(sandbox_url, request.order_id)

    asked = await stripe_provider.retrieve_payment(charged["payment_intent"])
    assert asked.outcome is PaymentOutcome.SUCCEEDED
    [found] = await stripe_provider.find_payments(request.order_id)
    assert (found.provider_ref, found.attempt_id, found.outcome) == (
        charged["payment_intent"],
        request.attempt_id,
        PaymentOutcome.SUCCEEDED,
    )


async def test_a_500_saved_before_anything_happened_is_replayed_and_charges_nothing(
    sandbox_url: str, sdk: stripe.StripeClient
) -> None:
    await script_answer(sandbox_url, status=500, type="api_error", saved=True)
    for _ in range(2):
        with pytest.raises(stripe.APIError) as failed:
            create(sdk, "key-saved-early", "ord_early")
        assert failed.value.http_status == 500
    assert (failed.value.headers or {}).get("idempotent-replayed") == "true"
    assert (await ledger(sandbox_url))["payment_intents"] == []
    create(sdk, "key-other", "ord_early")  # another key is another request
    assert len(await charges_for(sandbox_url, "ord_early")) == 1


async def test_a_network_edge_500_still_replays_the_real_result(
    sandbox_url: str, sdk: stripe.StripeClient
) -> None:
    await set_faults(sandbox_url, error_after=1.0, limit=1)
    with pytest.raises(stripe.APIError):
        create(sdk, "key-edge", "ord_edge")
    intent = create(sdk, "key-edge", "ord_edge")
    assert intent.status == "succeeded"
    assert intent.last_response is not None
    assert intent.last_response.headers.get("idempotent-replayed") == "true"
    assert len(await charges_for(sandbox_url, "ord_edge")) == 1


async def test_a_key_is_kept_for_24_hours_of_the_sandbox_clock_then_freed(
    sandbox_url: str, sdk: stripe.StripeClient
) -> None:
    first = create(sdk, "key-day", "ord_day")
    await advance(sandbox_url, DAY_S - 60)
    assert create(sdk, "key-day", "ord_day").id == first.id  # still the same request
    with pytest.raises(stripe.IdempotencyError) as reused:  # other parameters: refused
        create(sdk, "key-day", "ord_day", amount=100)
    assert reused.value.http_status == 400
    assert reused.value.json_body is not None
    assert reused.value.json_body["error"]["type"] == "idempotency_error"
    assert "key-day" in reused.value.json_body["error"]["message"]

    await advance(sandbox_url, 120)  # past 24 hours: the key was pruned
    fresh = create(sdk, "key-day", "ord_day", amount=100)
    assert fresh.id != first.id and fresh.amount == 100
    assert len(await charges_for(sandbox_url, "ord_day")) == 2


async def test_the_clock_endpoint_refuses_what_is_not_a_forward_move(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        for body in ({"advance_s": -1}, {"advance_s": "60"}, {"advance_s": True}, {}, []):
            response = await http.post("/_sandbox/clock", json=body)
            assert response.status_code == 400, body
        assert (await http.get("/_sandbox/clock")).json()["offset_s"] == 0


async def test_a_request_while_the_first_with_its_key_runs_is_a_409_and_saves_nothing(
    sandbox_url: str, sdk: stripe.StripeClient, stripe_provider: StripeProvider
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH, timeout=30) as http:
        assert (await http.post("/_sandbox/writes", json={"paused": True})).status_code == 200
        body = {
            "amount": "2599",
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "metadata[order_id]": "ord_busy",
        }
        first = asyncio.create_task(
            http.post("/v1/payment_intents", data=body, headers={"Idempotency-Key": "key-busy"})
        )
        deadline = time.monotonic() + 10
        while (await http.get("/_sandbox/writes")).json()["keys_in_use"] != 1:
            assert time.monotonic() < deadline, "the first request never arrived"
            await asyncio.sleep(0.01)

        with pytest.raises(stripe.APIError) as busy:
            await asyncio.to_thread(
                sdk.v1.payment_intents.create,
                create_params("ord_busy"),
                options={"idempotency_key": "key-busy"},
            )
        assert busy.value.http_status == 409
        assert busy.value.json_body is not None
        error = busy.value.json_body["error"]
        assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_in_use")
        request = charge_request(order_id="ord_busy", idempotency_key="key-busy")
        with pytest.raises(ProviderBusy):
            await stripe_provider.create_payment(request)

        assert (await http.post("/_sandbox/writes", json={"paused": False})).status_code == 200
        answered = await first
        assert answered.status_code == 200, answered.text
        replay = await http.post(
            "/v1/payment_intents", data=body, headers={"Idempotency-Key": "key-busy"}
        )
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == answered.json()["id"]
    assert len(await charges_for(sandbox_url, "ord_busy")) == 1
    assert "idempotency_key_in_use" in await fault_kinds(sandbox_url)


async def test_a_reused_key_with_other_parameters_reaches_the_adapter_as_a_key_conflict(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    request = charge_request(idempotency_key="key-conflict")
    await stripe_provider.create_payment(request)
    other = charge_request(idempotency_key="key-conflict", amount=100)
    with pytest.raises(ProviderKeyConflict):
        await stripe_provider.create_payment(other)


async def test_a_429_is_stripes_rate_limit_error(
    sandbox_url: str, sdk: stripe.StripeClient, stripe_provider: StripeProvider
) -> None:
    await set_faults(sandbox_url, rate_limit=1.0)
    with pytest.raises(stripe.RateLimitError) as limited:
        create(sdk, "key-429", "ord_429")
    assert limited.value.http_status == 429
    assert limited.value.json_body is not None
    error = limited.value.json_body["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    with pytest.raises(ProviderRateLimited):
        await stripe_provider.create_payment(charge_request())


async def test_every_error_the_sandbox_gives_has_a_type_stripe_has(sandbox_url: str) -> None:
    seen: dict[str, tuple[int, str]] = {}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:

        async def note(name: str, response: httpx.Response) -> None:
            seen[name] = (response.status_code, response.json()["error"]["type"])

        form = {"amount": "100", "currency": "eur", "payment_method": "pm_card_visa"}
        paid = await http.post("/v1/payment_intents", data={**form, "confirm": "true"})
        await note("unauthenticated", await http.get("/v1/charges", headers={"Authorization": ""}))
        await note("validation", await http.post("/v1/payment_intents", data=form))
        await note("missing", await http.get("/v1/payment_intents/pi_missing"))
        declined = {**form, "confirm": "true", "payment_method": "pm_card_chargeDeclined"}
        await note("declined", await http.post("/v1/payment_intents", data=declined))
        paid_id = paid.json()["id"]
        await note("state", await http.post(f"/v1/payment_intents/{paid_id}/cancel"))
        refund = {"payment_intent": paid_id, "amount": "101"}
        await note("refund", await http.post("/v1/refunds", data=refund))
        key = {"Idempotency-Key": "k-types"}
        await http.post("/v1/payment_intents", data={**form, "confirm": "true"}, headers=key)
        reused = {**form, "amount": "200", "confirm": "true"}
        await note("reused", await http.post("/v1/payment_intents", data=reused, headers=key))
        await set_faults(sandbox_url, error_before=1.0, limit=1)
        await note("server", await http.get("/v1/charges"))
        await set_faults(sandbox_url, rate_limit=1.0, limit=1)
        await note("limited", await http.get("/v1/charges"))
        await http.post("/_sandbox/outage", json={"seconds": 30})
        await note("outage", await http.get("/v1/charges"))
        await http.post("/_sandbox/outage", json={"seconds": 0})
    assert seen == {
        "unauthenticated": (401, "invalid_request_error"),
        "validation": (400, "invalid_request_error"),
        "missing": (404, "invalid_request_error"),
        "declined": (402, "card_error"),
        "state": (400, "invalid_request_error"),
        "refund": (400, "invalid_request_error"),
        "reused": (400, "idempotency_error"),
        "server": (500, "api_error"),
        "limited": (429, "invalid_request_error"),
        "outage": (503, "api_error"),
    }
    assert {kind for _, kind in seen.values()} <= STRIPE_ERROR_TYPES


async def test_a_second_cancel_is_stripes_400_and_the_adapter_still_reads_it_as_canceled(
    sandbox_url: str, sdk: stripe.StripeClient, stripe_provider: StripeProvider
) -> None:
    params = create_params("ord_cancel2", method="pm_card_authenticationRequired")
    intent = sdk.v1.payment_intents.create(params)
    assert sdk.v1.payment_intents.cancel(intent.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.cancel(intent.id)
    assert refused.value.http_status == 400
    assert refused.value.code == "payment_intent_unexpected_state"
    # the adapter's own key would replay its first answer; a fresh adapter call with the
    # intent already canceled elsewhere reads the 400's embedded intent as canceled
    result = await stripe_provider.cancel_payment(intent.id)
    assert (result.provider_ref, result.outcome) == (intent.id, PaymentOutcome.FAILED)


async def test_the_test_switches_refuse_malformed_settings(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        for answer in (
            {"status": 400, "type": "invalid_request_error", "saved": True},  # no 4xx is kept
            {"status": 500, "type": "api_error", "saved": "yes"},
            {"status": 500, "type": "api_error", "after": 1},
        ):
            assert (await http.post("/_sandbox/answers", json=answer)).status_code == 400, answer
        for body in ({"paused": "true"}, {}, ["paused"]):
            assert (await http.post("/_sandbox/writes", json=body)).status_code == 400, body
        assert (await http.post("/_sandbox/writes", content=b"{")).status_code == 400
        state = (await http.get("/_sandbox/writes")).json()
    assert state == {"paused": False, "keys_in_use": 0}
