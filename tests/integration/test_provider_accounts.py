"""Provider accounts: each verifies webhooks with its own secret, a webhook only settles
attempts made at the account it came from, and each account says whether it is live."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.api.app import create_app
from orderguard.bootstrap import configured_providers, slot, wire
from orderguard.config import Settings
from orderguard.providers.base import InvalidWebhook, PaymentOutcome
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.signing import SIGNATURE_HEADER, signature_header
from orderguard.services.providers import Providers, ProviderSlot
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings

VISA, THREE_DS = "pm_card_visa", "pm_card_authenticationRequired"
EVENT = b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}'


def signed(secret: str) -> dict[str, str]:
    now = int(time.time())
    return {SIGNATURE_HEADER: signature_header(EVENT, secret, timestamp=now)}


def test_the_fail_over_account_verifies_with_its_own_secret_not_the_primarys() -> None:
    settings = Settings(
        stripe_api_key="sk_live_primary",
        stripe_webhook_secret="whsec_primary_account",
        secondary_stripe_api_key="sk_live_secondary",
        secondary_stripe_webhook_secret="whsec_secondary_account",
    )
    with ExitStack() as resources:
        providers = configured_providers(settings, resources)
        primary = providers.named("stripe").provider
        secondary = providers.named("stripe-secondary").provider
        assert secondary.parse_webhook(EVENT, signed("whsec_secondary_account")).event_id == "evt_1"
        with pytest.raises(InvalidWebhook):
            secondary.parse_webhook(EVENT, signed("whsec_primary_account"))
        with pytest.raises(InvalidWebhook):
            primary.parse_webhook(EVENT, signed("whsec_secondary_account"))
        assert primary.parse_webhook(EVENT, signed("whsec_primary_account")).event_id == "evt_1"


def test_a_fail_over_account_without_its_own_secret_refuses_every_webhook() -> None:
    settings = Settings(
        stripe_api_key="sk_test_primary",
        stripe_webhook_secret="whsec_primary_account",
        secondary_stripe_api_key="sk_test_secondary",
    )
    with ExitStack() as resources:
        secondary = configured_providers(settings, resources).named("stripe-secondary").provider
        for secret in ("whsec_primary_account", "whsec_sandbox", ""):
            with pytest.raises(InvalidWebhook):
                secondary.parse_webhook(EVENT, signed(secret))


@pytest.mark.parametrize(
    ("api_key", "live"),
    [
        ("sk_live_abc", True),
        ("rk_live_abc", True),
        ("sk_test_abc", False),
        ("rk_test_abc", False),
        ("sk_test_orderguard_sandbox", False),
    ],
)
def test_an_account_is_live_only_with_a_live_key(api_key: str, live: bool) -> None:
    provider = StripeProvider(api_key=api_key, webhook_secret="whsec_x")
    assert provider.livemode is live
    assert slot(Settings(), provider).livemode is live


def test_the_in_process_sandbox_is_never_live(tmp_path: Path) -> None:
    settings = Settings(sandbox_db=str(tmp_path / "sandbox.db"))
    with ExitStack() as resources:
        providers = configured_providers(settings, resources)
        assert providers.primary.name == "sandbox"
        assert providers.livemode is False


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@asynccontextmanager
async def client_on(url: str, providers: Providers) -> AsyncIterator[httpx.AsyncClient]:
    storage = await open_storage(url)
    container = wire(api_settings(), storage, providers)
    transport = httpx.ASGITransport(app=create_app(container=container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            yield client
    finally:
        await storage.close()


def account(name: str, *, live: bool = False, secret: str = "whsec_memory") -> ProviderSlot:
    provider = InMemoryProvider(name=name, webhook_secret=secret)
    return ProviderSlot(provider, CircuitBreaker(failure_threshold=3), livemode=live)


async def placed(client: httpx.AsyncClient, method: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/orders", json=order_body(payment={"method": method}), headers=key()
    )
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_an_order_taken_with_a_live_account_is_live_in_the_api(database: str) -> None:
    async with client_on(database, Providers([account("stripe", live=True)])) as client:
        order = await placed(client, VISA)
        assert order["livemode"] is True
        read = (await client.get(f"/v1/orders/{order['id']}")).json()
        assert read["livemode"] is True
        listed = (await client.get("/v1/orders")).json()["data"]
        assert [o["livemode"] for o in listed] == [True]


async def test_an_order_taken_with_a_test_account_is_test_mode_in_the_api(database: str) -> None:
    async with client_on(database, Providers([account("sandbox")])) as client:
        order = await placed(client, VISA)
        assert order["livemode"] is False
        assert (await client.get(f"/v1/orders/{order['id']}")).json()["livemode"] is False
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["OrderOut"]
        assert "livemode" in schema["required"]
        assert schema["properties"]["livemode"]["type"] == "boolean"


async def test_a_webhook_verified_by_the_sandbox_never_settles_another_accounts_order(
    database: str,
) -> None:
    stripe = account("stripe", secret="whsec_stripe_account")
    sandbox = account("sandbox", secret="whsec_sandbox_own")
    async with client_on(database, Providers([stripe, sandbox])) as client:
        order = await placed(client, THREE_DS)
        assert order["state"] == "action_required"
        assert order["payment_attempts"][-1]["provider"] == "stripe"
        at_stripe = stripe.provider
        assert isinstance(at_stripe, InMemoryProvider)
        ref = order["payment_attempts"][-1]["provider_ref"]
        payment = at_stripe.payments[ref].result
        succeeded = replace(payment, outcome=PaymentOutcome.SUCCEEDED, redirect_url=None)
        in_sandbox = sandbox.provider
        assert isinstance(in_sandbox, InMemoryProvider)
        body, headers = in_sandbox.signed_webhook("payment_intent.succeeded", payment=succeeded)
        response = await client.post("/v1/webhooks/sandbox", content=body, headers=headers)
        assert response.status_code == 200, response.text  # the sandbox's own secret verifies
        detail = (await client.get(f"/v1/orders/{order['id']}")).json()
        assert detail["state"] == "action_required"  # but it does not speak for stripe's attempt
        assert any("do not know" in e["note"] for e in detail["timeline"])


async def test_an_order_charged_through_a_test_fail_over_account_is_test_mode(
    database: str,
) -> None:
    primary = account("stripe", live=True)
    for _ in range(primary.breaker.failure_threshold):
        primary.breaker.record_failure()  # the live account is down: its circuit is open
    failover = account("stripe-secondary", live=False)
    async with client_on(database, Providers([primary, failover])) as client:
        order = await placed(client, VISA)
        assert order["payment_attempts"][-1]["provider"] == "stripe-secondary"
        assert order["state"] == "paid"
        assert order["livemode"] is False  # no real money moved: the account was a test one
        assert (await client.get(f"/v1/orders/{order['id']}")).json()["livemode"] is False


async def test_an_order_charged_through_a_live_fail_over_account_is_live(database: str) -> None:
    primary = account("sandbox", live=False)
    for _ in range(primary.breaker.failure_threshold):
        primary.breaker.record_failure()
    failover = account("stripe-secondary", live=True)
    async with client_on(database, Providers([primary, failover])) as client:
        order = await placed(client, VISA)
        assert order["payment_attempts"][-1]["provider"] == "stripe-secondary"
        assert (await client.get(f"/v1/orders/{order['id']}")).json()["livemode"] is True


async def test_an_order_paid_later_through_a_test_fail_over_account_becomes_test_mode(
    database: str,
) -> None:
    primary = account("stripe", live=True)
    failover = account("stripe-secondary", live=False)
    async with client_on(database, Providers([primary, failover])) as client:
        response = await client.post("/v1/orders", json=order_body(), headers=key())
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["livemode"] is True  # taken while the live account is the primary
        for _ in range(primary.breaker.failure_threshold):
            primary.breaker.record_failure()
        paid = await client.post(
            f"/v1/orders/{order['id']}/payments", json={"payment": {"method": VISA}}, headers=key()
        )
        assert paid.status_code in (200, 201), paid.text
        detail = (await client.get(f"/v1/orders/{order['id']}")).json()
        assert detail["payment_attempts"][-1]["provider"] == "stripe-secondary"
        assert detail["livemode"] is False
