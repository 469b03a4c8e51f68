"""The two defects the shopper's side of the demo must catch are planted at wiring, around
a service, and only when the setting says so: paying again charges the declined method
(``pay_again_old_method``), and the return from 3-D Secure sends the shopper to a link their
order page does not know (``three_ds_return_token``). Through the real app, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from orderguard.bootstrap import Container, build_app, wire
from orderguard.config import Settings
from orderguard.demo.defects import PayAgainOldMethod, ReturnWithForeignToken
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.stripe.testcards import DECLINED, NEEDS_AUTHENTICATION, SUCCEEDS
from orderguard.services.pay_again import PayAgain
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.shopper_return import ShopperReturn
from orderguard.storage.memory import InMemoryStorage
from tests.factories import key, order_body

LOCAL = "http://127.0.0.1:8000"


def _container(defect: str | None) -> tuple[Container, InMemoryProvider]:
    provider = InMemoryProvider(name="memory")
    providers = Providers([ProviderSlot(provider, CircuitBreaker(failure_threshold=3))])
    settings = Settings(public_url=LOCAL, planted_defect=defect)
    return wire(settings, InMemoryStorage(), providers), provider


@asynccontextmanager
async def _shop(defect: str | None) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryProvider]]:
    container, provider = _container(defect)
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as http:
        yield http, provider


def test_the_services_are_wrapped_only_when_their_defect_is_on() -> None:
    plain, _ = _container(None)
    assert type(plain.pay_again) is PayAgain and type(plain.shopper_return) is ShopperReturn
    other, _ = _container("refund_amount")
    assert type(other.pay_again) is PayAgain and type(other.shopper_return) is ShopperReturn
    paying, _ = _container("pay_again_old_method")
    assert isinstance(paying.pay_again, PayAgainOldMethod)
    assert type(paying.shopper_return) is ShopperReturn
    returning, _ = _container("three_ds_return_token")
    assert isinstance(returning.shopper_return, ReturnWithForeignToken)
    assert type(returning.pay_again) is PayAgain


@pytest.mark.parametrize(
    ("defect", "ends", "methods"),
    [
        (None, "paid", [DECLINED, SUCCEEDS]),
        ("pay_again_old_method", "payment_failed", [DECLINED, DECLINED]),
    ],
    ids=["control", "defect"],
)
async def test_paying_again_charges_the_declined_method_with_the_defect(
    defect: str | None, ends: str, methods: list[str]
) -> None:
    async with _shop(defect) as (http, provider):
        placed = await http.post(
            "/v1/orders", json=order_body(payment={"method": DECLINED}), headers=key()
        )
        assert placed.json()["state"] == "payment_failed", placed.text
        order_id = placed.json()["id"]
        again = await http.post(
            f"/v1/orders/{order_id}/payments",
            json={"payment": {"method": SUCCEEDS}},
            headers=key(),
        )
        assert again.status_code == 201, again.text
        assert again.json()["state"] == ends
        assert [p.request.method for p in provider.payments.values()] == methods


@pytest.mark.parametrize("defect", [None, "three_ds_return_token"], ids=["control", "defect"])
async def test_back_from_3ds_the_shopper_lands_on_their_page_unless_the_defect_is_on(
    defect: str | None,
) -> None:
    async with _shop(defect) as (http, provider):
        placed = await http.post(
            "/v1/orders", json=order_body(payment={"method": NEEDS_AUTHENTICATION}), headers=key()
        )
        order = placed.json()
        assert order["state"] == "action_required", placed.text
        token = order["status_url"].split("token=")[1]
        for ref in provider.payments:
            provider.complete_action(ref, approved=True)
        back = await http.get(f"/orders/{order['id']}/return", params={"token": token})
        assert back.status_code == 303
        page = await http.get(back.headers["location"])
        # either way the order was brought up to date: the shopper's approval paid it
        status = await http.get(f"/orders/{order['id']}/status", params={"token": token})
        assert status.json()["state"] == "paid"
        if defect is None:
            assert page.status_code == 200
        else:
            assert page.status_code == 404
            assert token not in back.headers["location"]
