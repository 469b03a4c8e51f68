"""Reading orders: one with its history, pages with a keyset cursor, auth, 404."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.services import api_keys
from tests.factories import key, order_body
from tests.integration.conftest import Api


async def test_an_unknown_order_is_404_problem(api: Api) -> None:
    response = await api.client.get("/v1/orders/ord_nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/order-not-found"


async def test_an_unknown_route_is_a_problem_not_an_html_page(api: Api) -> None:
    response = await api.client.get("/v2/whatever")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_orders_are_listed_newest_first_page_by_page(api: Api) -> None:
    ids = [
        (await api.client.post("/v1/orders", json=order_body(), headers=key())).json()["id"]
        for _ in range(5)
    ]
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = (await api.client.get("/v1/orders", params=params)).json()
        seen += [o["id"] for o in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(reversed(ids))
    received = (await api.client.get("/v1/orders", params={"state": "received"})).json()
    assert len(received["data"]) == 5
    paid = (await api.client.get("/v1/orders", params={"state": "paid"})).json()
    assert paid["data"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"state": "lost"},
        {"cursor": "%%%"},
        {"created_after": "yesterday"},
    ],
)
async def test_bad_list_parameters_are_422(api: Api, params: dict[str, object]) -> None:
    response = await api.client.get("/v1/orders", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][0] == "query"


async def test_once_a_key_exists_every_request_needs_it(api: Api) -> None:
    _, secret = await api_keys.create_key(api.container.storage, "shop")
    api.client._transport.app.state.keys_required = None  # type: ignore[attr-defined]
    anonymous = await api.client.post("/v1/orders", json=order_body(), headers=key())
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = await api.client.get("/v1/orders", headers={"Authorization": "Bearer og_sk_wrong"})
    assert wrong.status_code == 401
    auth = {"Authorization": f"Bearer {secret}"}
    placed = await api.client.post("/v1/orders", json=order_body(), headers={**key(), **auth})
    assert placed.status_code == 201
    listed = await api.client.get("/v1/orders", headers=auth)
    assert [o["id"] for o in listed.json()["data"]] == [placed.json()["id"]]


async def test_requests_arriving_while_the_key_answer_is_refreshed_share_one_query(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = api_keys.keys_required

    async def counted(storage: object) -> bool:
        asked.append(1)
        return await real(storage)  # type: ignore[arg-type]

    monkeypatch.setattr(api_keys, "keys_required", counted)
    api.client._transport.app.state.keys_required = None  # type: ignore[attr-defined]
    answers = await asyncio.gather(
        *(api.client.post("/v1/orders", json=order_body(), headers=key()) for _ in range(12))
    )
    assert [a.status_code for a in answers] == [201] * 12
    assert len(asked) == 1
    await api.client.post("/v1/orders", json=order_body(), headers=key())
    assert len(asked) == 1  # answered from the cache


async def test_idempotency_keys_are_scoped_per_merchant_key(api: Api) -> None:
    _, first = await api_keys.create_key(api.container.storage, "shop-a")
    _, second = await api_keys.create_key(api.container.storage, "shop-b")
    api.client._transport.app.state.keys_required = None  # type: ignore[attr-defined]
    shared = {"Idempotency-Key": "same-key-for-two-merchants"}
    a = await api.client.post(
        "/v1/orders", json=order_body(), headers={**shared, "Authorization": f"Bearer {first}"}
    )
    b = await api.client.post(
        "/v1/orders", json=order_body(), headers={**shared, "Authorization": f"Bearer {second}"}
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


async def test_openapi_documents_the_contract(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    post = schema["paths"]["/v1/orders"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PlaceOrderIn"
    )
    assert {"201", "400", "409", "413", "415", "422"} <= set(post["responses"])
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "PlaceOrderIn" in schema["components"]["schemas"]


async def test_a_key_revoked_is_refused_once_the_cache_window_passes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orderguard.api import auth

    key, secret = await api_keys.create_key(api.container.storage, "shop")
    auth_header = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/v1/orders", headers=auth_header)).status_code == 200
    await api_keys.revoke_key(api.container.storage, key.id)
    clock = [auth.time.monotonic() + auth.KEY_CACHE_SECONDS + 1]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    assert (await api.client.get("/v1/orders", headers=auth_header)).status_code == 401
    assert (await api.client.get("/v1/orders")).status_code == 401  # revoking never opens
