"""Running the API inside an asyncio program (the demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from orderguard.config import Settings


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: ``X-Forwarded-For``/``-Proto`` are believed only from the
    addresses in ``ORDERGUARD_TRUSTED_PROXIES`` (none by default, whatever the peer: a
    client could otherwise give itself a fresh address on every console log-in)."""
    trusted = [a.strip() for a in settings.trusted_proxies.split(",") if a.strip()]
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this event loop; yields its base URL. Forwarding
    headers are believed only from ``settings.trusted_proxies`` (by default from no one)."""
    port = port or free_port(host)
    # The process's logging stays its own: no uvicorn handlers, no levels set on its loggers
    # (they are global; a test or the demo would lose, or leak, every later access line).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=None,
        lifespan="on",
        **proxy_options(settings or Settings()),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
