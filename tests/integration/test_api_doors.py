"""Every door authenticated: the Host a request names, who may call without a key, what a
cross-site form can reach, and what each key's scopes allow (the key named on the timeline).

In-process through ``httpx.ASGITransport`` with explicit peer addresses and Host headers:
the transport hands the app the same ASGI scope uvicorn does (``client``, ``server``,
``headers``), which is what these checks read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.api.app import create_app
from orderguard.api.problems import PROBLEM_JSON
from orderguard.bootstrap import wire
from orderguard.services import api_keys
from orderguard.services.api_keys import KeyScope
from orderguard.storage import migrate
from orderguard.storage.database import connect, transaction
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import Api, api_settings, memory_providers

#: The public URL the ``api`` fixture's settings name.
PUBLIC = "https://shop.example"
#: A peer address that is not this machine (TEST-NET-3).
STRANGER = "203.0.113.7"
FORM = "application/x-www-form-urlencoded"

Client = Callable[..., httpx.AsyncClient]


@pytest.fixture
def client(api: Api) -> Client:
    """A client of ``api``'s app from ``peer``, at ``base_url`` (its Host)."""

    def make(*, base_url: str = LOCAL_URL, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        app = api.client._transport.app  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app, client=(peer, 40123))
        return httpx.AsyncClient(transport=transport, base_url=base_url)

    return make


@asynccontextmanager
async def served(
    tmp_path: Path, base_url: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with ``settings`` on its own SQLite file, and a loopback client at ``base_url``."""
    storage = await open_storage(f"sqlite:///{tmp_path / 'doors.db'}")
    container = wire(api_settings(**settings), storage, memory_providers())
    transport = httpx.ASGITransport(app=create_app(container=container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http
    finally:
        await storage.close()


async def new_key(api: Api, *scopes: KeyScope) -> tuple[str, dict[str, str]]:
    """A key with ``scopes`` (none named: the default): its id and the header that sends it."""
    chosen = {"scopes": scopes} if scopes else {}
    created, secret = await api_keys.create_key(api.container.storage, "shop", **chosen)
    api.client._transport.app.state.keys_required = None  # type: ignore[attr-defined]
    return created.id, {"Authorization": f"Bearer {secret}"}


async def paid_order(api: Api, auth: dict[str, str] | None = None) -> dict[str, Any]:
    body = order_body(payment={"method": "pm_card_visa"})
    placed = await api.client.post("/v1/orders", json=body, headers={**key(), **(auth or {})})
    assert placed.status_code == 201, placed.text
    assert placed.json()["state"] == "paid"
    detail: dict[str, Any] = placed.json()
    return detail


# -- Host -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/orders"),
        ("POST", "/v1/orders"),
        ("POST", "/v1/webhooks/memory"),
        ("GET", "/console/login"),
        ("GET", "/openapi.json"),
    ],
)
async def test_a_request_naming_another_host_is_refused_before_any_route(
    api: Api, client: Client, method: str, path: str
) -> None:
    async with client() as http:
        answer = await http.request(
            method, path, headers={"Host": "evil.example", **key()}, json=order_body()
        )
    assert answer.status_code == 421, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["type"] == "/problems/misdirected-request"
    listed = await api.client.get("/v1/orders")
    assert listed.json()["data"] == [], "nothing was placed"


async def test_the_public_host_and_in_development_the_loopback_names_are_accepted(
    api: Api, client: Client
) -> None:
    _, auth = await new_key(api, KeyScope.ORDERS_READ)
    for base_url in (PUBLIC, LOCAL_URL, "http://localhost:8000", "http://[::1]:8000"):
        async with client(base_url=base_url) as http:
            answer = await http.get("/v1/orders", headers=auth)
        assert answer.status_code == 200, (base_url, answer.text)
    async with client() as http:  # a loopback name on another port than the one bound
        other_port = await http.get("/v1/orders", headers={**auth, "Host": "127.0.0.1:9999"})
    assert other_port.status_code == 421


async def test_in_production_only_the_public_host_is_accepted(tmp_path: Path) -> None:
    async with served(tmp_path, LOCAL_URL, env="production") as http:
        answer = await http.get("/healthz")
    assert answer.status_code == 421, answer.text


# -- without a key ----------------------------------------------------------------------------


async def test_without_keys_only_loopback_to_loopback_is_answered_in_development(
    api: Api, client: Client
) -> None:
    async with client(peer=STRANGER) as http:
        from_afar = await http.post("/v1/orders", json=order_body(), headers=key())
    async with client(base_url=PUBLIC) as http:  # a reverse proxy on this host
        proxied = await http.post("/v1/orders", json=order_body(), headers=key())
    async with client(base_url=PUBLIC, peer=STRANGER) as http:
        public = await http.get("/v1/orders")
    for refused in (from_afar, proxied, public):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert "orderguard keys create" in refused.json()["detail"]
    async with client() as http:
        local = await http.post("/v1/orders", json=order_body(), headers=key())
    assert local.status_code == 201, local.text
    listed = await api.client.get("/v1/orders")
    assert [o["id"] for o in listed.json()["data"]] == [local.json()["id"]]


async def test_without_keys_production_answers_nobody(tmp_path: Path) -> None:
    local = "http://127.0.0.1:8000"
    async with served(tmp_path, local, env="production", public_url=local) as http:
        placed = await http.post("/v1/orders", json=order_body(), headers=key())
        read = await http.get("/v1/orders")
    for refused in (placed, read):
        assert refused.status_code == 401, refused.text
        assert "production" in refused.json()["detail"]


# -- cross-site requests ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [FORM, "text/plain"])
@pytest.mark.parametrize("origin", ["https://evil.example", None])
async def test_a_cross_site_form_cannot_refund_or_cancel(
    api: Api, content_type: str, origin: str | None
) -> None:
    paid = await paid_order(api)
    waiting = (await api.client.post("/v1/orders", json=order_body(), headers=key())).json()
    headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
    refund = await api.client.post(f"/v1/orders/{paid['id']}/refund", content=b"", headers=headers)
    cancel = await api.client.post(
        f"/v1/orders/{waiting['id']}/cancel", content=b"amount=1", headers=headers
    )
    for refused in (refund, cancel):
        assert refused.status_code == (403 if origin else 415), refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
    assert (await api.client.get(f"/v1/orders/{paid['id']}")).json()["state"] == "paid"
    assert (await api.client.get(f"/v1/orders/{waiting['id']}")).json()["state"] == "received"
    assert api.provider.refunds == []


async def test_a_foreign_origin_is_refused_even_with_a_json_body(api: Api) -> None:
    paid = await paid_order(api)
    for origin in ("https://evil.example", "null", "http://127.0.0.1:8000.evil.example"):
        refused = await api.client.post(
            f"/v1/orders/{paid['id']}/refund", json={}, headers={"Origin": origin}
        )
        assert refused.status_code == 403, (origin, refused.text)
        assert refused.json()["type"] == "/problems/foreign-origin"
    placed = await api.client.post(
        "/v1/orders", json=order_body(), headers={**key(), "Origin": "https://evil.example"}
    )
    assert placed.status_code == 403
    assert api.provider.refunds == []
    own = await api.client.post(
        f"/v1/orders/{paid['id']}/refund", json={}, headers={"Origin": PUBLIC}
    )
    assert own.status_code == 200, own.text


async def test_actions_without_fields_take_an_empty_json_body_or_braces_only(api: Api) -> None:
    first = (await api.client.post("/v1/orders", json=order_body(), headers=key())).json()
    second = (await api.client.post("/v1/orders", json=order_body(), headers=key())).json()
    extra = await api.client.post(f"/v1/orders/{first['id']}/cancel", json={"reason": "x"})
    assert extra.status_code == 422, extra.text
    empty = await api.client.post(
        f"/v1/orders/{first['id']}/cancel", headers={"Content-Type": "application/json"}
    )
    braces = await api.client.post(f"/v1/orders/{second['id']}/cancel", json={})
    assert (empty.status_code, braces.status_code) == (200, 200), (empty.text, braces.text)
    assert empty.json()["state"] == braces.json()["state"] == "cancelled"


# -- scopes and the actor ---------------------------------------------------------------------


async def test_a_read_key_reads_but_cannot_place_nor_refund(api: Api) -> None:
    paid = await paid_order(api)
    _, reader = await new_key(api, KeyScope.ORDERS_READ)
    assert (await api.client.get(f"/v1/orders/{paid['id']}", headers=reader)).status_code == 200
    refund = await api.client.post(f"/v1/orders/{paid['id']}/refund", json={}, headers=reader)
    place = await api.client.post("/v1/orders", json=order_body(), headers={**key(), **reader})
    assert (refund.status_code, place.status_code) == (403, 403)
    assert refund.headers["content-type"] == PROBLEM_JSON
    assert "payments:refund" in refund.json()["detail"]
    assert "orders:write" in place.json()["detail"]
    assert api.provider.refunds == []
    _, admin = await new_key(api, KeyScope.ADMIN)
    assert len((await api.client.get("/v1/orders", headers=admin)).json()["data"]) == 1


async def test_a_checkout_key_cannot_refund_and_a_refund_key_cannot_place(api: Api) -> None:
    _, checkout = await new_key(api)  # the default: orders:read and orders:write
    _, refunds = await new_key(api, KeyScope.PAYMENTS_REFUND)
    paid = await paid_order(api, checkout)
    refused = await api.client.post(f"/v1/orders/{paid['id']}/refund", json={}, headers=checkout)
    place = await api.client.post("/v1/orders", json=order_body(), headers={**key(), **refunds})
    assert (refused.status_code, place.status_code) == (403, 403)


async def test_the_refunding_key_is_the_actor_on_the_timeline(api: Api) -> None:
    refunder_id, refunder = await new_key(api, KeyScope.PAYMENTS_REFUND, KeyScope.ORDERS_READ)
    _, checkout = await new_key(api)
    paid = await paid_order(api, checkout)
    refund = await api.client.post(f"/v1/orders/{paid['id']}/refund", json={}, headers=refunder)
    assert refund.status_code == 200, refund.text
    last = refund.json()["timeline"][-1]
    assert (last["to_state"], last["cause"], last["actor"]) == ("refunded", "api", refunder_id)


async def test_every_entry_a_key_causes_names_that_key(api: Api) -> None:
    writer_id, writer = await new_key(api, KeyScope.ORDERS_WRITE, KeyScope.ORDERS_READ)
    declined = order_body(payment={"method": "pm_card_chargeDeclined"})
    placed = await api.client.post("/v1/orders", json=declined, headers={**key(), **writer})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    again = await api.client.post(
        f"/v1/orders/{order_id}/payments",
        json={"payment": {"method": "pm_card_chargeDeclined"}},
        headers={**key(), **writer},
    )
    assert again.status_code == 201, again.text
    rechecked = await api.client.post(f"/v1/orders/{order_id}/recheck", json={}, headers=writer)
    cancelled = await api.client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=writer)
    assert (rechecked.status_code, cancelled.status_code) == (200, 200), cancelled.text
    timeline = cancelled.json()["timeline"]
    assert [e["to_state"] for e in timeline if e["kind"] == "state_changed"] == [
        "received",
        "payment_pending",
        "payment_failed",
        "payment_pending",
        "payment_failed",
        "cancelled",
    ]
    assert {e["actor"] for e in timeline} == {writer_id}


async def test_without_keys_the_actor_says_the_request_was_local(api: Api) -> None:
    paid = await paid_order(api)
    refund = await api.client.post(f"/v1/orders/{paid['id']}/refund", json={})
    assert {e["actor"] for e in refund.json()["timeline"]} == {"api:local"}


async def test_a_new_key_is_for_a_checkout_back_end_unless_scopes_are_named(api: Api) -> None:
    default, _ = await api_keys.create_key(api.container.storage, "checkout")
    chosen, _ = await api_keys.create_key(
        api.container.storage, "finance", scopes=[KeyScope.PAYMENTS_REFUND, KeyScope.ORDERS_READ]
    )
    [first, second] = await api_keys.list_keys(api.container.storage)
    assert (first.id, first.scopes) == (default.id, ("orders:read", "orders:write"))
    assert (second.id, second.scopes) == (chosen.id, ("orders:read", "payments:refund"))


async def test_keys_made_before_scopes_existed_keep_every_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await connect(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        shipped = migrate.available()
        monkeypatch.setattr(migrate, "available", lambda: [m for m in shipped if m.version < 8])
        await migrate.migrate(db)
        async with transaction(db) as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, name, prefix, secret_hash, created_at) "
                "VALUES ('key_old', 'old', 'og_sk_abcdef', 'h', '2026-01-01T00:00:00+00:00')"
            )
        monkeypatch.setattr(migrate, "available", lambda: shipped)
        await migrate.migrate(db)
    finally:
        await db.close()
    storage = await open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        [old] = await api_keys.list_keys(storage)
    finally:
        await storage.close()
    assert old.scopes == ("admin",)


# -- documentation ----------------------------------------------------------------------------


async def test_docs_are_off_in_production_and_the_contract_stays(tmp_path: Path) -> None:
    async with served(tmp_path, PUBLIC, env="production") as http:
        docs, redoc, contract = [await http.get(p) for p in ("/docs", "/redoc", "/openapi.json")]
    assert (docs.status_code, redoc.status_code) == (404, 404)
    assert contract.status_code == 200 and "/v1/orders" in contract.json()["paths"]


async def test_docs_are_served_in_development(api: Api) -> None:
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
