"""The API and the faces are leaves: they serve on whatever has what their routes declare
(their desks), not only on the composition root's ``Container``.

The desk here is built by hand over in-memory storage and an in-memory provider, with the
services the routes call and nothing else: no janitor, sweeper, clock or resources, and
no ``close``. A route that reached for more would fail here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial

import httpx
from fastapi import FastAPI

from orderguard import web
from orderguard.api.app import create_app
from orderguard.api.render import order_json
from orderguard.config import Settings
from orderguard.container import Container
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.intake import Intake
from orderguard.services.operations import Operations
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments, PaymentSettings
from orderguard.services.recheck import Recheck
from orderguard.services.shopper_return import ShopperReturn
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.testing import InMemoryStorage
from tests.conftest import LOCAL_URL
from tests.factories import key, new_order, order_body
from tests.integration.conftest import api_settings, memory_providers

PUBLIC_URL = "https://shop.example"


@dataclass(frozen=True)
class Desk:
    """What the API's routes and the shopper's page declare, and nothing more."""

    settings: Settings
    storage: UnitOfWorkFactory
    payments: Payments
    intake: Intake
    pay_again: PayAgain
    recheck: Recheck
    operations: Operations
    shopper_return: ShopperReturn
    inbox: WebhookInbox
    shopper_pay_pace: Pace


def desk() -> Desk:
    storage = InMemoryStorage()
    payments = Payments(
        memory_providers(),
        PaymentSettings(return_url=PUBLIC_URL + "/orders/{order_id}/return?token={token}"),
    )
    render = partial(order_json, public_url=PUBLIC_URL, actions=payments.shopper_action)
    recheck = Recheck(storage, payments)
    events = WebhookEvents(storage, payments, recheck)
    return Desk(
        settings=api_settings(public_url=PUBLIC_URL),
        storage=storage,
        payments=payments,
        intake=Intake(storage, render, payments),
        pay_again=PayAgain(storage, render, payments),
        recheck=recheck,
        operations=Operations(storage, payments),
        shopper_return=ShopperReturn(recheck),
        inbox=WebhookInbox(storage, payments.providers, events.apply),
        shopper_pay_pace=Pace(),
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL_URL)


def test_the_desk_is_not_a_container_and_lacks_what_only_the_worker_uses() -> None:
    declared = {f.name for f in fields(Desk)}
    wired = {f.name for f in fields(Container)}
    assert not isinstance(desk(), Container)
    assert {"janitor", "sweeper", "clock", "resources"} <= wired - declared
    assert not hasattr(Desk, "close")


async def test_the_api_places_and_reads_an_order_on_a_desk() -> None:
    app = create_app(container=desk())
    async with client(app) as http:
        placed = await http.post(
            "/v1/orders", json=order_body(merchant_reference="D-1"), headers=key()
        )
        order_id = placed.json()["id"]
        read = await http.get(f"/v1/orders/{order_id}")
        listed = await http.get("/v1/orders")
    assert placed.status_code == 201
    assert placed.headers["Location"] == f"/v1/orders/{order_id}"
    assert read.status_code == 200
    assert read.json()["merchant_reference"] == "D-1"
    assert read.json()["state"] == "received"
    assert read.json()["status_url"].startswith(f"{PUBLIC_URL}/orders/{order_id}?token=")
    assert [o["id"] for o in listed.json()["data"]] == [order_id]


async def test_the_shopper_page_is_served_on_a_desk_and_needs_the_token() -> None:
    wired = desk()
    order = new_order(reference="D-2")
    async with wired.storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    app = create_app(container=wired, faces=[web.install])
    async with client(app) as http:
        shown = await http.get(f"/orders/{order.id}?token={order.status_token}&lang=en")
        refused = await http.get(f"/orders/{order.id}?token=wrong&lang=en")
    assert shown.status_code == 200
    assert "T-shirt" in shown.text  # the order's first line, as new_order() placed it
    assert refused.status_code == 404
    assert "T-shirt" not in refused.text


async def test_metrics_without_gauges_shows_the_process_and_no_database() -> None:
    app = create_app(container=desk())  # no gauges given: the composition root gives them
    async with client(app) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert "orderguard_database_up" not in answer.text
