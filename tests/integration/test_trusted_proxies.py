"""``X-Forwarded-For`` is believed only from ``ORDERGUARD_TRUSTED_PROXIES`` (review of issue
15, finding 4): otherwise any local client could give itself a fresh address on every
console log-in and never meet the per-address lock-out."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from orderguard.api import server
from orderguard.api.server import running_server
from orderguard.config import Settings


async def peer(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that answers with the client address the server gave it."""
    if scope["type"] != "http":
        return
    client = scope.get("client") or ("?", 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(client[0]).encode()})


async def seen_address(settings: Settings | None) -> list[str]:
    served = running_server(peer) if settings is None else running_server(peer, settings=settings)
    async with served as url, httpx.AsyncClient() as client:
        return [
            (await client.get(url, headers={"X-Forwarded-For": f"198.51.100.{n}"})).text
            for n in (1, 2)
        ]


async def test_by_default_a_forwarded_address_is_not_believed_even_from_loopback() -> None:
    assert await seen_address(None) == ["127.0.0.1", "127.0.0.1"]
    assert await seen_address(Settings()) == ["127.0.0.1", "127.0.0.1"]


async def test_a_trusted_proxy_passes_its_clients_address_on() -> None:
    trusted = Settings(trusted_proxies="127.0.0.1")
    assert await seen_address(trusted) == ["198.51.100.1", "198.51.100.2"]


def test_trusted_proxies_are_read_as_a_comma_separated_list() -> None:
    settings = Settings.load({"ORDERGUARD_TRUSTED_PROXIES": " 10.0.0.5, 10.0.0.6 ,"})
    assert server.proxy_options(settings) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.5", "10.0.0.6"],
    }
    assert server.proxy_options(Settings()) == {"proxy_headers": False}
