"""The composition root: ``bootstrap`` builds what ``serve`` runs; the HTTP app is a leaf
that is given its container (or an opener), its faces, and the services their ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
from fastapi import FastAPI

from orderguard.api.app import create_app
from orderguard.bootstrap import Container, build_app, wire
from orderguard.domain.order import Order
from orderguard.services.queries import shopper_order
from orderguard.testing import InMemoryStorage
from tests.conftest import LOCAL_URL
from tests.factories import key, new_order, order_body
from tests.integration.conftest import api_settings, memory_providers


def memory_container(**wired: object) -> Container:
    return wire(api_settings(), InMemoryStorage(), memory_providers(), **wired)  # type: ignore[arg-type]


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        return await client.get(path)


async def test_the_api_alone_shows_no_faces_and_build_app_adds_the_shopper_page_and_console() -> (
    None
):
    container = memory_container()
    bare = create_app(container=container)
    assert (await get(bare, "/healthz")).status_code == 200
    assert (await get(bare, "/console/login")).status_code == 404
    assert (await get(bare, "/static/style.css")).status_code == 404

    served = build_app(container=container)
    login = await get(served, "/console/login")
    assert login.status_code == 200
    assert "<form" in login.text
    assert (await get(served, "/static/style.css")).status_code == 200


async def test_every_face_given_to_create_app_is_added_once() -> None:
    added: list[FastAPI] = []

    def face(app: FastAPI) -> None:
        added.append(app)

        @app.get("/face")
        async def shown() -> dict[str, str]:
            return {"face": "shown"}

    app = create_app(container=memory_container(), faces=[face])
    assert added == [app]
    assert (await get(app, "/face")).json() == {"face": "shown"}


async def test_the_opener_is_entered_when_the_app_starts_and_left_when_it_stops() -> None:
    container = memory_container()
    seen: list[str] = []

    @asynccontextmanager
    async def opener() -> AsyncIterator[Container]:
        seen.append("opened")
        yield container
        seen.append("closed")

    app = create_app(opener=opener, settings=container.settings)
    assert seen == []
    async with app.router.lifespan_context(app):
        assert seen == ["opened"]
        assert app.state.container is container
        assert (await get(app, "/healthz")).json() == {"status": "ok"}
    assert seen == ["opened", "closed"]


async def test_create_app_refuses_both_or_neither_of_container_and_opener() -> None:
    container = memory_container()

    @asynccontextmanager
    async def opener() -> AsyncIterator[Container]:
        yield container

    for wrong in ({}, {"container": container, "opener": opener}, {"opener": opener}):
        try:
            create_app(**wrong)  # type: ignore[arg-type]
        except TypeError:
            continue
        raise AssertionError(f"create_app accepted {sorted(wrong)}")


async def test_the_replay_body_is_what_the_given_renderer_wrote() -> None:
    def render(order: Order) -> bytes:
        return orjson.dumps({"id": order.id, "written_by": "the test's renderer"})

    app = build_app(container=memory_container(render=render))
    transport = httpx.ASGITransport(app=app)
    headers = key()
    body = order_body()
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        first = await client.post("/v1/orders", json=body, headers=headers)
        again = await client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 201
    assert first.json()["written_by"] == "the test's renderer"
    assert set(first.json()) == {"id", "written_by"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content


async def test_by_default_the_replay_body_is_the_api_order_document() -> None:
    app = build_app(container=memory_container())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        placed = await client.post("/v1/orders", json=order_body(), headers=key())
    document = placed.json()
    assert document["state"] == "received"
    assert document["status_url"].startswith(f"https://shop.example/orders/{document['id']}?token=")


async def test_a_shopper_reaches_an_order_only_with_its_token() -> None:
    storage = InMemoryStorage()
    order = new_order()
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    found = await shopper_order(storage, order.id, order.status_token)
    assert found is not None and found.id == order.id
    assert await shopper_order(storage, order.id, "x" * len(order.status_token)) is None
    assert await shopper_order(storage, order.id, "") is None
    assert await shopper_order(storage, "ord_unknown", order.status_token) is None
