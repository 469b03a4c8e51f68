"""A port reserved for a server of this process stays ours until the server serves on it:
no one else can bind it meanwhile (as they could between ``free_port`` and the bind)."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from orderguard.api.server import reserve_port, running_server


async def _hello(_request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_a_reserved_port_is_held_until_served_on() -> None:
    port = reserve_port()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    app = Starlette(routes=[Route("/", _hello)])
    async with running_server(app, port=port) as url:
        assert url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/")).text == "hello"
    with socket.socket() as again:  # given back once the server stopped
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its closed connections
        again.bind(("127.0.0.1", port))
