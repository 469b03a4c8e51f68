"""Faults injected by the sandbox, seen through the Stripe adapter, with the ledger as oracle."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import FaultProfile
from tests.providers.conftest import StartSandbox, charge_request
from tests.providers.harness import SECRET
from tests.providers.sandbox_client import (
    AUTH,
    charges_for,
    fault_counts,
    fault_kinds,
    set_faults,
)


async def test_a_timeout_after_the_charge_is_an_unknown_outcome_with_one_charge(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    request = charge_request()
    await set_faults(sandbox_url, timeout_after=1.0)
    with pytest.raises(ProviderOutcomeUnknown):
        await stripe_provider.create_payment(request)
    charged = await charges_for(sandbox_url, request.order_id)
    assert len(charged) == 1
    assert (await fault_counts(sandbox_url))["timeout_after"] == 1
    await set_faults(sandbox_url)
    retried = await stripe_provider.create_payment(request)
    assert retried.outcome is PaymentOutcome.SUCCEEDED
    assert retried.provider_ref == charged[0]["payment_intent"]
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_a_limited_fault_is_used_up_by_the_calls_it_strikes_not_by_reads(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    # a write-only fault with limit 1: reads first leave it armed, one charge uses it up
    await set_faults(sandbox_url, error_after=1.0, limit=1)
    for _ in range(3):
        assert await stripe_provider.find_payments("ord_nobody") == []
    struck = charge_request()
    with pytest.raises(ProviderServerError):
        await stripe_provider.create_payment(struck)
    spared = charge_request()
    assert (await stripe_provider.create_payment(spared)).outcome is PaymentOutcome.SUCCEEDED
    assert (await fault_counts(sandbox_url))["error_after"] == 1
    assert len(await charges_for(sandbox_url, struck.order_id)) == 1


async def test_a_500_before_the_charge_charges_nothing_and_a_retry_charges_once(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    request = charge_request()
    await set_faults(sandbox_url, error_before=1.0)
    with pytest.raises(ProviderServerError):
        await stripe_provider.create_payment(request)
    assert await charges_for(sandbox_url, request.order_id) == []
    await set_faults(sandbox_url)
    assert (await stripe_provider.create_payment(request)).outcome is PaymentOutcome.SUCCEEDED
    assert (await stripe_provider.create_payment(request)).outcome is PaymentOutcome.SUCCEEDED
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_a_500_after_the_charge_keeps_it_and_the_retry_returns_it(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    request = charge_request()
    await set_faults(sandbox_url, error_after=1.0)
    with pytest.raises(ProviderServerError):
        await stripe_provider.create_payment(request)
    charged = await charges_for(sandbox_url, request.order_id)
    assert len(charged) == 1
    await set_faults(sandbox_url)
    retried = await stripe_provider.create_payment(request)
    assert retried.provider_ref == charged[0]["payment_intent"]
    assert len(await charges_for(sandbox_url, request.order_id)) == 1


async def test_a_429_is_rate_limited_and_charges_nothing(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    request = charge_request()
    await set_faults(sandbox_url, rate_limit=1.0)
    with pytest.raises(ProviderRateLimited):
        await stripe_provider.create_payment(request)
    assert await charges_for(sandbox_url, request.order_id) == []
    assert (await fault_counts(sandbox_url))["rate_limit"] == 1


async def test_an_outage_window_fails_every_call_until_it_ends(
    sandbox_url: str, stripe_provider: StripeProvider
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        (await http.post("/_sandbox/outage", json={"seconds": 60})).raise_for_status()
        with pytest.raises(ProviderServerError):
            await stripe_provider.create_payment(charge_request())
        with pytest.raises(ProviderServerError):
            await stripe_provider.find_payments("ord_x")
        assert (await fault_counts(sandbox_url))["outage"] == 2
        (await http.post("/_sandbox/outage", json={"seconds": 0})).raise_for_status()
    assert (
        await stripe_provider.create_payment(charge_request())
    ).outcome is PaymentOutcome.SUCCEEDED


async def test_a_refused_connection_is_unavailable(unused_port: int) -> None:
    provider = StripeProvider(
        api_key="sk_test_x", webhook_secret=SECRET, base_url=f"http://127.0.0.1:{unused_port}"
    )
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.create_payment(charge_request())
    finally:
        await provider.aclose()


async def test_a_reset_after_sending_is_unknown_for_writes_and_unavailable_for_reads() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = StripeProvider(
        api_key="sk_test_x", webhook_secret=SECRET, base_url=f"http://127.0.0.1:{port}"
    )
    try:
        with pytest.raises(ProviderOutcomeUnknown):
            await provider.create_payment(charge_request())
        with pytest.raises(ProviderUnavailable):
            await provider.retrieve_payment("pi_1")
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()


async def test_a_wrong_api_key_is_rejected(sandbox_url: str) -> None:
    provider = StripeProvider(api_key="rk_live_nope", webhook_secret=SECRET, base_url=sandbox_url)
    try:
        with pytest.raises(ProviderRejected):
            await provider.create_payment(charge_request())
    finally:
        await provider.aclose()


async def _thirty_calls(base_url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH) as http:
        for i in range(30):
            form = {
                "amount": "100",
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": "true",
            }
            await http.post("/v1/payment_intents", data=form, headers={"Idempotency-Key": f"k{i}"})
    return await fault_kinds(base_url)


async def test_the_same_seed_injects_the_same_fault_sequence(
    start_sandbox: StartSandbox, tmp_path: object
) -> None:
    profile = FaultProfile(
        error_before=0.2, error_after=0.2, rate_limit=0.2, latency=0.2, latency_ms=(1, 3)
    )
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        with start_sandbox(faults=profile, seed=seed, db_path=f"{tmp_path}/{name}.db") as url:
            runs.append(await _thirty_calls(url))
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 4
    assert runs[2] != runs[0]


async def test_idempotent_replays_are_marked_and_a_reused_key_is_refused(sandbox_url: str) -> None:
    form = {"amount": "100", "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true"}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:
        first = await http.post("/v1/payment_intents", data=form, headers={"Idempotency-Key": "k"})
        again = await http.post("/v1/payment_intents", data=form, headers={"Idempotency-Key": "k"})
        other = await http.post(
            "/v1/payment_intents", data={**form, "amount": "5"}, headers={"Idempotency-Key": "k"}
        )
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


async def test_a_decline_answers_402_with_a_stripe_card_error(sandbox_url: str) -> None:
    form = {
        "amount": "100",
        "currency": "eur",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": "true",
        "metadata[order_id]": "ord_1",
    }
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:
        response = await http.post("/v1/payment_intents", data=form)
        unauthenticated = await http.get("/v1/charges", headers={"Authorization": "Bearer x"})
    error = response.json()["error"]
    assert response.status_code == 402
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["payment_intent"]["metadata"] == {"order_id": "ord_1"}
    assert unauthenticated.status_code == 401


async def test_the_ledger_survives_a_restart(start_sandbox: StartSandbox) -> None:
    request = charge_request()
    with start_sandbox() as url:
        provider = StripeProvider(api_key="sk_test_a", webhook_secret=SECRET, base_url=url)
        first = await provider.create_payment(request)
        await provider.aclose()
    with start_sandbox() as url:
        provider = StripeProvider(api_key="sk_test_a", webhook_secret=SECRET, base_url=url)
        again = await provider.create_payment(request)
        await provider.aclose()
        assert again.provider_ref == first.provider_ref
        assert len(await charges_for(url, request.order_id)) == 1


async def test_the_3ds_page_offers_approve_and_refuse(sandbox_url: str) -> None:
    provider = StripeProvider(api_key="sk_test_a", webhook_secret=SECRET, base_url=sandbox_url)
    try:
        pending = await provider.create_payment(
            charge_request(
                method="pm_card_authenticationRequired", return_url="https://shop.test/back?o=1"
            )
        )
    finally:
        await provider.aclose()
    assert pending.redirect_url is not None
    async with httpx.AsyncClient() as http:
        page = await http.get(pending.redirect_url)
        done = await http.post(f"{pending.redirect_url}/approve")
    assert page.status_code == 200
    assert "/approve" in page.text and "/refuse" in page.text
    assert done.status_code == 303
    assert (
        done.headers["location"]
        == f"https://shop.test/back?o=1&payment_intent={pending.provider_ref}"
    )


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
