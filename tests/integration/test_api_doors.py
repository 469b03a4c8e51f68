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
import orjson
import pytest

from orderguard.api.app import create_metrics_app
from orderguard.api.problems import PROBLEM_JSON
from orderguard.bootstrap import build_app, wire
from orderguard.observability.metrics import API_PROCESS_REQUESTS, INTAKE_REQUESTS
from orderguard.services import api_keys
from orderguard.services.api_keys import KeyScope
from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.database import transaction
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
    transport = httpx.ASGITransport(app=build_app(container=container))
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


async def test_a_refused_host_still_gets_a_request_id_and_is_not_counted(
    api: Api, client: Client
) -> None:
    """The edge's order: the id first (a refusal carries it), then the Host check, and only
    what passes it is counted for this process and, on intake, by outcome."""
    counted = API_PROCESS_REQUESTS._value.get()
    refused_before = INTAKE_REQUESTS.labels("invalid")._value.get()
    async with client() as http:
        kept = await http.post(
            "/v1/orders",
            headers={"Host": "evil.example", "X-Request-ID": "trace-42.a:b", **key()},
            json=order_body(),
        )
        renamed = await http.post(
            "/v1/orders",
            headers={"Host": "evil.example", "X-Request-ID": "no spaces allowed", **key()},
            json=order_body(),
        )
    assert kept.status_code == renamed.status_code == 421
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    assert renamed.headers["x-request-id"].startswith("req_")
    assert API_PROCESS_REQUESTS._value.get() == counted, "a refused request is not counted"
    assert INTAKE_REQUESTS.labels("invalid")._value.get() == refused_before
    async with client() as http:
        bad = await http.post("/v1/orders", headers=key(), json={"currency": "EUR"})
    assert bad.status_code == 422
    assert API_PROCESS_REQUESTS._value.get() == counted + 1
    assert INTAKE_REQUESTS.labels("invalid")._value.get() == refused_before + 1


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


async def test_a_request_without_exactly_one_host_header_gets_400_before_any_route(
    api: Api,
) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    local = [(b"host", b"127.0.0.1:8000")]
    for hosts in ([], [(b"host", b"evil.example"), *local], [*local, (b"host", b"evil.example")]):
        status, body = await _raw_asgi(app, "POST", "/v1/orders", hosts)
        assert status == 400, (hosts, body)
        assert orjson.loads(body)["type"] == "/problems/ambiguous-host"
    assert (await api.client.get("/v1/orders")).json()["data"] == [], "nothing was placed"


async def _raw_asgi(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """Send ``app`` a request with exactly these ``headers`` (no client adds or merges any)."""
    body = orjson.dumps(order_body())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-type", b"application/json"), *key_header()],
        "client": ("127.0.0.1", 40123),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def key_header() -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in key().items()]


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


@pytest.mark.parametrize(
    "proxy_header",
    [
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Host", "shop.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "203.0.113.7"),
        ("Via", "1.1 nginx"),
    ],
)
async def test_without_keys_a_reverse_proxy_passing_a_loopback_host_is_refused(
    api: Api, client: Client, proxy_header: tuple[str, str]
) -> None:
    name, value = proxy_header
    async with client() as http:  # nginx's default proxy_pass: Host 127.0.0.1, peer 127.0.0.1
        placed = await http.post("/v1/orders", json=order_body(), headers={**key(), name: value})
        read = await http.get("/v1/orders", headers={name: value})
    for refused in (placed, read):
        assert refused.status_code == 401, (name, refused.text)
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert "proxy" in refused.json()["detail"]
        assert "orderguard keys create" in refused.json()["detail"]
    assert (await api.client.get("/v1/orders")).json()["data"] == [], "nothing was placed"


async def test_with_a_key_a_request_through_a_proxy_is_answered(api: Api, client: Client) -> None:
    _, auth = await new_key(api, KeyScope.ORDERS_READ)
    async with client() as http:
        answer = await http.get("/v1/orders", headers={**auth, "X-Forwarded-For": STRANGER})
    assert answer.status_code == 200, answer.text


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


#: The shopper's personal data and the order's history: only for keys with orders:read.
PRIVATE = {"customer", "items", "payment_attempts", "timeline", "locale", "flag_reason"}


async def test_a_checkout_key_that_cannot_read_gets_a_receipt_without_personal_data(
    api: Api,
) -> None:
    _, writer = await new_key(api, KeyScope.ORDERS_WRITE)
    headers = {**key(), **writer}
    declined = order_body(payment={"method": "pm_card_chargeDeclined"})
    placed = await api.client.post("/v1/orders", json=declined, headers=headers)
    replayed = await api.client.post("/v1/orders", json=declined, headers=headers)
    assert placed.status_code == replayed.status_code == 201, placed.text
    receipt = placed.json()
    assert PRIVATE.isdisjoint(receipt) and declined["customer"]["email"] not in placed.text
    assert receipt["state"] == "payment_failed"
    assert receipt["status_url"].startswith(f"{PUBLIC}/orders/{receipt['id']}?token=")
    assert {"next_action", "amount_total", "currency", "livemode"} <= set(receipt)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.content == placed.content, "a replay answers what the first request got"
    again = await api.client.post(
        f"/v1/orders/{receipt['id']}/payments",
        json={"payment": {"method": "pm_card_visa"}},
        headers={**key(), **writer},
    )
    assert again.status_code == 201, again.text
    assert PRIVATE.isdisjoint(again.json()) and again.json()["state"] == "paid"
    assert again.json()["status_url"] == receipt["status_url"]


async def test_recheck_cancel_and_refund_answer_only_the_outcome_without_orders_read(
    api: Api,
) -> None:
    _, writer = await new_key(api, KeyScope.ORDERS_WRITE)
    _, refunder = await new_key(api, KeyScope.PAYMENTS_REFUND)
    _, reader = await new_key(api, KeyScope.ORDERS_READ)
    waiting = await api.client.post("/v1/orders", json=order_body(), headers={**key(), **writer})
    paid = await api.client.post(
        "/v1/orders",
        json=order_body(payment={"method": "pm_card_visa"}),
        headers={**key(), **writer},
    )
    order_id, paid_id = waiting.json()["id"], paid.json()["id"]
    rechecked = await api.client.post(f"/v1/orders/{order_id}/recheck", json={}, headers=writer)
    cancelled = await api.client.post(f"/v1/orders/{order_id}/cancel", json={}, headers=writer)
    refunded = await api.client.post(f"/v1/orders/{paid_id}/refund", json={}, headers=refunder)
    for answer, state in (
        (rechecked, "received"),
        (cancelled, "cancelled"),
        (refunded, "refunded"),
    ):
        assert answer.status_code == 200, answer.text
        outcome = answer.json()
        assert (outcome["id"], outcome["state"]) in {(order_id, state), (paid_id, state)}
        assert PRIVATE.isdisjoint(outcome) and "status_url" not in outcome, outcome
        assert "@" not in answer.text, "no e-mail address"
    full = await api.client.get(f"/v1/orders/{paid_id}", headers=reader)
    assert full.json()["customer"]["email"] and full.json()["timeline"], "reading still reads"


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


async def test_docs_are_off_in_production_and_the_contract_is_for_admin_keys(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, PUBLIC, env="production") as http:
        docs, redoc = [await http.get(p) for p in ("/docs", "/redoc")]
        keyless = await http.get("/openapi.json")
        contract = await http.get("/openapi.json", headers=await stored_key(http, KeyScope.ADMIN))
    assert (docs.status_code, redoc.status_code) == (404, 404)
    assert keyless.status_code == 401, keyless.text
    assert contract.status_code == 200 and "/v1/orders" in contract.json()["paths"]
    assert "/openapi.json" not in contract.json()["paths"]


async def stored_key(http: httpx.AsyncClient, *scopes: KeyScope) -> dict[str, str]:
    """A key with ``scopes`` in the database of the app ``http`` talks to, as its header."""
    app = http._transport.app  # type: ignore[attr-defined]
    _, secret = await api_keys.create_key(app.state.container.storage, "k", scopes=scopes)
    app.state.keys_required = None
    return {"Authorization": f"Bearer {secret}"}


async def test_in_production_metrics_on_the_public_port_need_an_admin_key(tmp_path: Path) -> None:
    async with served(tmp_path, PUBLIC, env="production") as http:
        reader = await stored_key(http, KeyScope.ORDERS_READ, KeyScope.ORDERS_WRITE)
        admin = await stored_key(http, KeyScope.ADMIN)
        keyless = await http.get("/metrics")
        checkout = [await http.get(p, headers=reader) for p in ("/metrics", "/openapi.json")]
        scraped = await http.get("/metrics", headers=admin)
        probes = [await http.get(p) for p in ("/healthz", "/readyz")]
    assert keyless.status_code == 401, keyless.text
    assert [a.status_code for a in checkout] == [403, 403]
    assert scraped.status_code == 200 and "orderguard_" in scraped.text
    assert probes[0].json() == {"status": "ok"}
    assert probes[1].json()["status"] in {"ready", "unready"}, "probes need no key"


async def test_in_development_metrics_on_the_main_port_need_no_key(api: Api) -> None:
    await new_key(api, KeyScope.ORDERS_READ)  # keys exist: the API needs one, metrics do not
    scraped = await api.client.get("/metrics")
    assert scraped.status_code == 200 and "orderguard_" in scraped.text


# -- the operations address -------------------------------------------------------------------


@asynccontextmanager
async def operations(api: Api, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the operations app beside ``api``'s app, reached at ``base_url``."""
    main = api.client._transport.app  # type: ignore[attr-defined]
    ops = create_metrics_app(main, production=False)
    transport = httpx.ASGITransport(app=ops, client=("127.0.0.1", 40123))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield http


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/docs", "/healthz"])
async def test_the_operations_address_refuses_a_request_naming_another_host(
    api: Api, path: str
) -> None:
    async with operations(api, "http://127.0.0.1:9100") as http:
        rebound = await http.get(path, headers={"Host": "evil.example:9100"})
        other_port = await http.get(path, headers={"Host": "127.0.0.1:8000"})
    for refused in (rebound, other_port):
        assert refused.status_code == 421, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON


async def test_the_operations_address_answers_at_its_address_and_the_loopback_names(
    api: Api,
) -> None:
    for base_url in ("http://10.0.0.5:9100", "http://localhost:9100", "http://[::1]:9100"):
        async with operations(api, base_url) as http:
            scraped = await http.get("/metrics")
        assert scraped.status_code == 200, (base_url, scraped.text)
        assert "orderguard_" in scraped.text
    async with operations(api, "http://10.0.0.5:9100") as http:  # reached at 10.0.0.5 only
        elsewhere = await http.get("/metrics", headers={"Host": "10.0.0.6:9100"})
    assert elsewhere.status_code == 421


async def test_docs_are_served_in_development(api: Api) -> None:
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
