"""The wallets registered: an Alipay account is in use only once its app id is set; then
``alipay_*`` payments go to it, production refuses it at a sandbox gateway, and without
it they are refused as before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.bootstrap import build_app, configured_providers, wire
from orderguard.config import Settings
from orderguard.production import production_problems
from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys
from orderguard.providers.alipay.sandbox.server import run_sandbox
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory.provider import InMemoryProvider
from orderguard.services.providers import Providers, ProviderSlot
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body

#: What a production deployment with a real Stripe account sets (no problem on its own).
STRIPE_LIVE: dict[str, Any] = {
    "env": "production",
    "stripe_api_key": "sk_live_shop",
    "stripe_webhook_secret": "whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5",
    "public_url": "https://shop.example",
}


def alipay_settings(data_dir: Path, gateway: str) -> dict[str, Any]:
    """An Alipay app with the sandbox's generated keys, at ``gateway``."""
    config = SandboxConfig(data_dir=str(data_dir))
    keys = load_keys(config)
    return {
        "alipay_app_id": config.app_id,
        "alipay_app_private_key": str(keys.app_private_file),
        "alipay_public_key": str(keys.alipay_public_file),
        "alipay_seller_id": config.seller_id,
        "alipay_gateway_url": gateway,
        "alipay_notify_url": "https://shop.example/v1/webhooks/alipay",
    }


def test_an_unconfigured_wallet_changes_nothing_in_production() -> None:
    assert production_problems(Settings(**STRIPE_LIVE), active_api_keys=1) == []


def test_production_refuses_alipay_at_a_sandbox_gateway_naming_its_variable(
    tmp_path: Path,
) -> None:
    sandbox = alipay_settings(tmp_path, "http://127.0.0.1:18170/gateway.do")
    settings = Settings(**{**STRIPE_LIVE, **sandbox})
    first = production_problems(settings, active_api_keys=1)[0]
    assert first.setting == "ORDERGUARD_ALIPAY_GATEWAY_URL"
    assert "openapi.alipay.com" in first.fix


def test_production_takes_alipay_at_its_production_gateway(tmp_path: Path) -> None:
    live = alipay_settings(tmp_path, "https://openapi.alipay.com/gateway.do")
    assert production_problems(Settings(**{**STRIPE_LIVE, **live}), active_api_keys=1) == []
    unsigned = {**live, "alipay_app_private_key": None, "alipay_notify_url": None}
    found = production_problems(Settings(**{**STRIPE_LIVE, **unsigned}), active_api_keys=1)
    assert [p.setting for p in found] == [
        "ORDERGUARD_ALIPAY_APP_PRIVATE_KEY",
        "ORDERGUARD_ALIPAY_NOTIFY_URL",
    ]


def test_development_refuses_alipay_at_its_production_gateway(tmp_path: Path) -> None:
    live = alipay_settings(tmp_path, "https://openapi.alipay.com/gateway.do")
    [problem] = production_problems(Settings(**live), active_api_keys=0)
    assert (problem.setting, problem.mode) == ("ORDERGUARD_ALIPAY_GATEWAY_URL", "development")


@pytest.fixture
def alipay_sandbox(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An Alipay sandbox on loopback, and the settings of an app charging at it."""
    with run_sandbox(SandboxConfig(data_dir=str(tmp_path / "alipay"))) as url:
        yield alipay_settings(tmp_path / "alipay", f"{url}/gateway.do")


@asynccontextmanager
async def shop(sqlite_url: str, providers: Providers) -> AsyncIterator[httpx.AsyncClient]:
    storage = await open_storage(sqlite_url)
    container = wire(Settings(public_url="https://shop.example"), storage, providers)
    transport = httpx.ASGITransport(app=build_app(container=container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            yield client
    finally:
        await storage.close()


async def pay_with(client: httpx.AsyncClient, method: str) -> httpx.Response:
    body = order_body(currency="CNY", payment={"method": method})
    return await client.post("/v1/orders", json=body, headers=key())


async def test_alipay_page_goes_to_alipay_once_its_app_id_is_set(
    sqlite_url: str, alipay_sandbox: dict[str, Any]
) -> None:
    with ExitStack() as resources:
        providers = configured_providers(Settings(**alipay_sandbox), resources)
        assert [s.name for s in providers.slots] == ["alipay"]
        async with shop(sqlite_url, providers) as client:
            placed = await pay_with(client, "alipay_page")
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["state"] == "action_required"
    [attempt] = order["payment_attempts"]
    assert attempt["provider"] == "alipay"
    assert order["next_action"]["redirect_url"].startswith(alipay_sandbox["alipay_gateway_url"])


async def test_alipay_page_is_refused_while_alipay_is_not_configured(
    sqlite_url: str, tmp_path: Path
) -> None:
    with ExitStack() as resources:
        providers = configured_providers(Settings(sandbox_db=str(tmp_path / "s.db")), resources)
        assert [s.name for s in providers.slots] == ["sandbox"]
        async with shop(sqlite_url, providers) as client:
            refused = await pay_with(client, "alipay_page")
            listed = (await client.get("/v1/orders")).json()["data"]
    assert refused.status_code == 422
    assert refused.json()["type"] == "/problems/payment-method-not-accepted"
    assert listed == []


async def test_an_order_taken_without_a_method_is_held_to_the_rules_of_the_one_it_is_paid_with(
    sqlite_url: str, alipay_sandbox: dict[str, Any]
) -> None:
    """A card provider beside Alipay: an order in euros placed without a method is taken
    (the card provider can charge it), and paying it with Alipay, which cannot charge that
    amount in euros, is refused before anything is stored."""
    with ExitStack() as resources:
        wallet = configured_providers(Settings(**alipay_sandbox), resources).slots
        card = ProviderSlot(InMemoryProvider(name="card"), CircuitBreaker(failure_threshold=3))
        async with shop(sqlite_url, Providers([card, *wallet])) as client:
            body = order_body(currency="EUR")
            placed = await client.post("/v1/orders", json=body, headers=key())
            assert placed.status_code == 201, placed.text
            order_id = placed.json()["id"]
            refused = await client.post(
                f"/v1/orders/{order_id}/payments",
                json={"payment": {"method": "alipay_page"}},
                headers=key(),
            )
            after = (await client.get(f"/v1/orders/{order_id}")).json()
            paid = await client.post(
                f"/v1/orders/{order_id}/payments",
                json={"payment": {"method": "pm_card_visa"}},
                headers=key(),
            )
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "/problems/amount-not-chargeable"
    assert (after["state"], after["payment_attempts"]) == ("received", [])
    assert paid.status_code == 201, paid.text
    assert paid.json()["state"] == "paid"
