"""Providers as plug-ins, seen through the API: a payment goes to a provider that takes its
method (then by health and failover order), a method nobody takes is refused before
anything is stored, each provider's webhooks are answered in its own format, and the
services ask a provider's capabilities instead of assuming them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from orderguard.api.app import create_app
from orderguard.bootstrap import Container, wire
from orderguard.domain.events import Cause
from orderguard.providers.base import ChargeRequest, PaymentResult, ProviderOutcomeUnknown
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.profile import (
    CARD_PROFILE,
    Capabilities,
    MetadataLimits,
    ProviderProfile,
    plain_ack,
)
from orderguard.providers.resilience import CircuitBreaker
from orderguard.services.providers import Providers, ProviderSlot
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings

VISA = "pm_card_visa"
ALIPAY = "alipay_qr"
PROBLEM = "application/problem+json"

#: A wallet provider's profile: it takes ``alipay_*`` only and answers webhooks ``success``.
WALLET = ProviderProfile(
    methods=("alipay_",),
    capabilities=CARD_PROFILE.capabilities,
    reply=plain_ack("success"),
)


class Wallet(InMemoryProvider):
    """The in-memory fake taking a wallet method as if it were a card that succeeds."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        return await super().create_payment(dataclasses.replace(request, method=VISA))


@dataclass
class Shop:
    client: httpx.AsyncClient
    container: Container
    cards: InMemoryProvider
    wallet: Wallet
    slots: dict[str, ProviderSlot]


def capabilities(**changes: Any) -> Capabilities:
    return dataclasses.replace(CARD_PROFILE.capabilities, **changes)


async def open_shop(url: str, cards_profile: ProviderProfile = CARD_PROFILE) -> Shop:
    cards, wallet = InMemoryProvider(name="cards"), Wallet(name="wallet")
    slots = {
        "cards": ProviderSlot(cards, CircuitBreaker(failure_threshold=1), profile=cards_profile),
        "wallet": ProviderSlot(wallet, CircuitBreaker(failure_threshold=1), profile=WALLET),
    }
    storage = await open_storage(url)
    container = wire(api_settings(), storage, Providers(list(slots.values())))
    transport = httpx.ASGITransport(app=create_app(container=container))
    client = httpx.AsyncClient(transport=transport, base_url=LOCAL_URL)
    return Shop(client, container, cards, wallet, slots)


@pytest.fixture(params=["sqlite", "postgresql"])
async def shop(request: pytest.FixtureRequest) -> AsyncIterator[Shop]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    opened = await open_shop(url)
    async with opened.client:
        yield opened
    await opened.container.storage.close()


async def place(shop: Shop, method: str, **headers: str) -> httpx.Response:
    body = order_body(payment={"method": method})
    return await shop.client.post("/v1/orders", json=body, headers={**key(), **headers})


async def test_each_payment_goes_to_a_provider_that_takes_its_method(shop: Shop) -> None:
    by_card, by_wallet = await place(shop, VISA), await place(shop, ALIPAY)
    assert (by_card.status_code, by_wallet.status_code) == (201, 201)
    assert by_card.json()["payment_attempts"][0]["provider"] == "cards"
    assert by_wallet.json()["payment_attempts"][0]["provider"] == "wallet"
    assert by_wallet.json()["state"] == "paid"
    assert len(shop.wallet.payments) == 1
    assert len(shop.cards.payments) == 1


async def test_a_method_no_provider_takes_is_refused_before_anything_is_stored(
    shop: Shop,
) -> None:
    headers = key()
    body = order_body(payment={"method": "wechatpay_native"}, locale="zh-CN")
    refused = await shop.client.post("/v1/orders", json=body, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["type"] == "/problems/payment-method-not-accepted"
    assert problem["title"] == "不支持的支付方式"
    assert "wechatpay_native" in problem["detail"]
    assert problem["method"] == "wechatpay_native"
    assert (await shop.client.get("/v1/orders")).json()["data"] == []
    # the key was not used up: the same key takes a good request
    accepted = await shop.client.post(
        "/v1/orders", json=order_body(payment={"method": VISA}), headers=headers
    )
    assert accepted.status_code == 201, accepted.text
    assert shop.wallet.payments == {}


async def test_the_refusal_is_in_english_by_default(shop: Shop) -> None:
    refused = await place(shop, "wechatpay_native")
    assert refused.status_code == 422
    assert refused.json()["title"] == "Payment method not accepted"


async def test_paying_again_with_a_method_no_provider_takes_is_refused(shop: Shop) -> None:
    order = (await place(shop, "pm_card_chargeDeclined")).json()
    assert order["state"] == "payment_failed"
    again = await shop.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"payment": {"method": "wechatpay_native"}},
        headers=key(),
    )
    assert again.status_code == 422
    assert again.json()["type"] == "/problems/payment-method-not-accepted"
    document = (await shop.client.get(f"/v1/orders/{order['id']}")).json()
    assert len(document["payment_attempts"]) == 1


async def test_a_wallet_payment_waits_for_its_provider_rather_than_going_to_another(
    shop: Shop,
) -> None:
    shop.slots["wallet"].breaker.record_failure()  # threshold 1: open
    waiting = await place(shop, ALIPAY)
    assert waiting.status_code == 201
    assert waiting.json()["state"] == "received"
    assert waiting.json()["payment_attempts"] == []
    assert shop.cards.payments == {}
    card = await place(shop, VISA)  # cards are not held up by the wallet's outage
    assert card.json()["payment_attempts"][0]["provider"] == "cards"


async def test_each_provider_answers_its_webhooks_in_its_own_format(shop: Shop) -> None:
    order = (await place(shop, ALIPAY)).json()
    payment = shop.wallet.payments[order["payment_attempts"][0]["provider_ref"]].result
    body, headers = shop.wallet.signed_webhook("payment_intent.succeeded", payment=payment)
    first = await shop.client.post("/v1/webhooks/wallet", content=body, headers=headers)
    again = await shop.client.post("/v1/webhooks/wallet", content=body, headers=headers)
    for answer in (first, again):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.content == b"success"
    card = (await place(shop, VISA)).json()
    paid = shop.cards.payments[card["payment_attempts"][0]["provider_ref"]].result
    body, headers = shop.cards.signed_webhook("payment_intent.succeeded", payment=paid)
    answer = await shop.client.post("/v1/webhooks/cards", content=body, headers=headers)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"received": True, "duplicate": False}


async def _lost_answer(shop: Shop) -> str:
    """An order whose charge never reached the card provider and whose answer was lost."""
    shop.cards.fail_next(ProviderOutcomeUnknown("reset"), after_effect=False)
    order = (await place(shop, VISA)).json()
    assert order["state"] == "payment_unknown"
    assert order["payment_attempts"][0]["provider_ref"] is None
    return str(order["id"])


@pytest.mark.parametrize(
    ("cards_can", "resent"),
    [
        ({}, True),
        ({"find_by_order_id": False}, False),
        ({"key_retention": timedelta(0)}, False),
    ],
    ids=["searchable", "not-searchable", "keys-forgotten"],
)
async def test_a_recheck_asks_only_what_the_provider_can_answer(
    sqlite_url: str, cards_can: dict[str, Any], resent: bool
) -> None:
    profile = dataclasses.replace(CARD_PROFILE, capabilities=capabilities(**cards_can))
    shop = await open_shop(sqlite_url, cards_profile=profile)
    async with shop.client:
        order_id = await _lost_answer(shop)
        order = await shop.container.recheck.order(order_id, cause=Cause.JANITOR)
    await shop.container.storage.close()
    assert len(shop.cards.payments) == (1 if resent else 0)
    assert str(order.state) == ("paid" if resent else "payment_unknown")


@pytest.mark.parametrize("lists", [True, False])
async def test_the_sweep_lists_charges_only_where_the_provider_can(
    sqlite_url: str, lists: bool
) -> None:
    profile = dataclasses.replace(
        CARD_PROFILE, capabilities=capabilities(list_recent_charges=lists)
    )
    shop = await open_shop(sqlite_url, cards_profile=profile)
    async with shop.client:
        assert (await place(shop, VISA)).json()["state"] == "paid"
        report = await shop.container.sweeper.sweep_last(timedelta(hours=1))
    await shop.container.storage.close()
    assert report.charges_seen == (1 if lists else 0)
    assert report.errors == 0


async def test_the_charge_carries_a_snapshot_within_its_providers_metadata_limits(
    sqlite_url: str,
) -> None:
    small = MetadataLimits(keys=14, key_chars=40, value_chars=120)
    profile = dataclasses.replace(CARD_PROFILE, capabilities=capabilities(metadata=small))
    shop = await open_shop(sqlite_url, cards_profile=profile)
    async with shop.client:
        order = (await place(shop, VISA)).json()
    await shop.container.storage.close()
    metadata = shop.cards.payments[order["payment_attempts"][0]["provider_ref"]].request.metadata
    chunks = [value for name, value in metadata.items() if name.startswith("og_snap_")]
    assert chunks, "the snapshot travels with the charge"
    assert all(len(chunk) <= 100 for chunk in chunks)  # 120 less the 20 left unused
    assert len(chunks) <= 4  # 14 keys less the 10 left for ids and the provider's own
