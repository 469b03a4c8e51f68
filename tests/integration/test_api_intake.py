"""POST /v1/orders: intake, replays (G2) and every error class (G9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orderguard.storage.ports import IdempotencyRecord
from tests.factories import key, order_body
from tests.integration.conftest import Api

PROBLEM = "application/problem+json"


async def test_a_valid_order_is_stored_and_answered_201_with_its_status_url(api: Api) -> None:
    body = order_body()
    response = await api.client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["state"] == "received"
    assert order["amount_total"] == 3998 and order["currency"] == "EUR"
    assert order["items"] == [{**body["items"][0], "amount": 3998}]
    assert order["customer"]["email"] == "Ana@example.com"
    assert order["customer"]["phone"] == "+351912345678"
    assert order["next_action"] is None
    assert order["status_url"].startswith(f"https://shop.example/orders/{order['id']}?token=")
    assert len(order["status_url"].split("token=")[1]) >= 22
    assert response.headers["location"] == f"/v1/orders/{order['id']}"
    assert "idempotent-replayed" not in response.headers
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["timeline"][0]["to_state"] == "received"
    assert detail["timeline"][0]["request_id"] == response.headers["x-request-id"]


async def test_a_retry_with_the_same_key_and_body_replays_the_same_answer(api: Api) -> None:
    headers, body = key(), order_body()
    first = await api.client.post("/v1/orders", json=body, headers=headers)
    reordered = json.dumps(dict(reversed(list(body.items()))))  # same JSON, other key order
    retry = await api.client.post(
        "/v1/orders",
        content=reordered,
        headers={**headers, "content-type": "application/json"},
    )
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    page = (await api.client.get("/v1/orders")).json()
    assert [o["id"] for o in page["data"]] == [first.json()["id"]]


async def test_the_same_key_with_another_body_is_refused_422(api: Api) -> None:
    headers = key()
    await api.client.post("/v1/orders", json=order_body(), headers=headers)
    response = await api.client.post("/v1/orders", json=order_body(), headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert len((await api.client.get("/v1/orders")).json()["data"]) == 1


async def test_a_request_still_in_flight_gets_409_with_retry_after(api: Api) -> None:
    now = datetime.now(UTC)
    async with api.container.storage() as uow:
        await uow.idempotency.claim(
            IdempotencyRecord(
                scope="local",
                key="busy-key",
                fingerprint=_fingerprint(order_body_fixed()),
                created_at=now,
                locked_until=now + timedelta(seconds=20),
            )
        )
        await uow.commit()
    response = await api.client.post(
        "/v1/orders", json=order_body_fixed(), headers={"Idempotency-Key": "busy-key"}
    )
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/request-in-flight"
    assert 1 <= int(response.headers["retry-after"]) <= 20


async def test_a_key_whose_first_request_died_mid_flight_answers_with_the_order(
    api: Api,
) -> None:
    headers, body = {"Idempotency-Key": "stale-key"}, order_body_fixed()
    first = await api.client.post("/v1/orders", json=body, headers=headers)
    order_id = first.json()["id"]
    past = datetime.now(UTC) - timedelta(minutes=5)
    async with api.container.storage() as uow:  # pretend the answer was never stored
        await uow.idempotency.prune(datetime.now(UTC) + timedelta(days=1))
        await uow.idempotency.claim(
            IdempotencyRecord(
                scope="local",
                key="stale-key",
                fingerprint=_fingerprint(body),
                created_at=past,
                order_id=order_id,
                locked_until=past + timedelta(seconds=30),
            )
        )
        await uow.commit()
    retry = await api.client.post("/v1/orders", json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.json()["id"] == order_id
    assert retry.headers["idempotent-replayed"] == "true"


def order_body_fixed() -> dict[str, object]:
    return order_body(merchant_reference="FIXED-1")


def _fingerprint(body: dict[str, object]) -> str:
    from orderguard.services.idempotency import fingerprint

    return fingerprint("POST", "/v1/orders", body)


@pytest.mark.parametrize(
    ("headers", "slug"),
    [
        ({}, "idempotency-key-missing"),
        ({"Idempotency-Key": ""}, "idempotency-key-malformed"),
        ({"Idempotency-Key": "has space"}, "idempotency-key-malformed"),
        ({"Idempotency-Key": "x" * 256}, "idempotency-key-malformed"),
        ({"Idempotency-Key": "ключ".encode()}, "idempotency-key-malformed"),
    ],
)
async def test_a_missing_or_malformed_idempotency_key_is_400(
    api: Api, headers: dict[str, str | bytes], slug: str
) -> None:
    response = await api.client.post("/v1/orders", json=order_body(), headers=headers)
    assert response.status_code == 400
    assert response.json()["type"] == f"/problems/{slug}"


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.post(
        "/v1/orders",
        content=b'{"currency": "EUR",',
        headers={**key(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/malformed-json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_body_that_is_not_json_is_415(api: Api, content_type: str) -> None:
    response = await api.client.post(
        "/v1/orders",
        content=json.dumps(order_body()),
        headers={**key(), "content-type": content_type},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM


async def test_a_body_over_64_kib_is_413(api: Api) -> None:
    body = order_body(merchant_reference="x" * (65 * 1024))
    response = await api.client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 413


async def test_every_invalid_field_is_named_in_one_422(api: Api) -> None:
    body = order_body(currency="EURO", surprise=1)
    body["items"] = [
        {"sku": "", "name": "T-shirt", "quantity": 0, "unit_amount": 19.99},
        {"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": -1, "colour": "red"},
    ]
    body["customer"]["email"] = "not-an-email"
    body["customer"]["phone"] = "123"
    body["customer"]["shipping_address"]["country"] = "XX"
    response = await api.client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    locations = {tuple(e["loc"]) for e in problem["errors"]}
    assert locations >= {
        ("surprise",),
        ("currency",),
        ("items", 0, "sku"),
        ("items", 0, "quantity"),
        ("items", 0, "unit_amount"),
        ("items", 1, "unit_amount"),
        ("items", 1, "colour"),
        ("customer", "email"),
        ("customer", "shipping_address", "country"),
    }
    assert all(e["msg"] for e in problem["errors"])


async def test_a_failed_validation_does_not_burn_the_key(api: Api) -> None:
    headers = key()
    bad = order_body()
    bad["items"][0]["quantity"] = 0
    assert (await api.client.post("/v1/orders", json=bad, headers=headers)).status_code == 422
    good = await api.client.post("/v1/orders", json=order_body(), headers=headers)
    assert good.status_code == 201


async def test_a_missing_country_is_refused_without_a_default_and_filled_with_one(
    api: Api,
) -> None:
    body = order_body()
    del body["customer"]["shipping_address"]["country"]
    refused = await api.client.post("/v1/orders", json=body, headers=key())
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["customer", "shipping_address", "country"]
    api.container.settings = api.container.settings.__class__(default_country="PT")
    filled = await api.client.post("/v1/orders", json=body, headers=key())
    assert filled.status_code == 201
    assert filled.json()["customer"]["shipping_address"]["country"] == "PT"
    assert filled.json()["customer"]["phone"] == "+351912345678"


async def test_a_duplicate_merchant_reference_is_409_naming_the_existing_order(
    api: Api,
) -> None:
    body = order_body()
    first = await api.client.post("/v1/orders", json=body, headers=key())
    second = await api.client.post("/v1/orders", json=body, headers=key())
    assert second.status_code == 409
    assert second.json()["type"] == "/problems/duplicate-merchant-reference"
    assert second.json()["order_id"] == first.json()["id"]
    assert first.json()["id"] in second.json()["detail"]


@pytest.mark.parametrize(
    ("accept_language", "locale"), [("zh-CN,zh;q=0.9", "zh-CN"), ("en-GB", "en"), (None, "en")]
)
async def test_the_shoppers_language_comes_from_accept_language(
    api: Api, accept_language: str | None, locale: str
) -> None:
    headers = key()
    if accept_language:
        headers["Accept-Language"] = accept_language
    response = await api.client.post("/v1/orders", json=order_body(), headers=headers)
    assert response.json()["locale"] == locale


async def test_zero_and_three_decimal_currencies_total_in_minor_units(api: Api) -> None:
    body = order_body(currency="KWD")
    body["items"] = [{"sku": "A", "name": "A", "quantity": 3, "unit_amount": 1005}]
    response = await api.client.post("/v1/orders", json=body, headers=key())
    assert (response.json()["amount_total"], response.json()["currency"]) == (3015, "KWD")


@pytest.mark.parametrize(
    "poison",
    ["nul\x00byte", "\ud800", "💳" * 300, "'; DROP TABLE orders; --"],
)
async def test_hostile_text_never_causes_a_500(api: Api, poison: str) -> None:
    body = order_body()
    body["items"][0]["name"] = poison
    raw = json.dumps(body, ensure_ascii=True).encode()
    response = await api.client.post(
        "/v1/orders", content=raw, headers={**key(), "content-type": "application/json"}
    )
    assert response.status_code in {201, 400, 422}, response.text
    assert response.status_code == 201 or response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("accept_language", "locale"),
    [("en;q=0.5, zh-CN;q=0.9", "zh-CN"), ("fr, en;q=0.8", "en"), ("zh;q=bad, en", "en")],
)
async def test_accept_language_quality_values_are_respected(
    api: Api, accept_language: str, locale: str
) -> None:
    headers = {**key(), "Accept-Language": accept_language}
    response = await api.client.post("/v1/orders", json=order_body(), headers=headers)
    assert response.json()["locale"] == locale


async def test_an_explicit_locale_wins_over_accept_language(api: Api) -> None:
    headers = {**key(), "Accept-Language": "en"}
    response = await api.client.post("/v1/orders", json=order_body(locale="zh-CN"), headers=headers)
    assert response.json()["locale"] == "zh-CN"
