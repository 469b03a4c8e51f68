"""Running the API inside an asyncio program (the demo, tests, benchmarks), and beside its
metrics app on a second address (``serve --metrics-port``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

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


#: A host and port to listen on.
Address = tuple[str, int]


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


def serve_beside(
    main: ASGIApp,
    ops: ASGIApp,
    *,
    main_at: Address,
    ops_at: Address,
    proxies: dict[str, Any] | None = None,
) -> None:
    """Serve ``main`` and ``ops`` on their own addresses in this process until a signal
    (or either server stopping) stops both; ``main``'s lifespan opens the shared wiring.
    ``proxies`` are uvicorn's proxy options (:func:`proxy_options`)."""

    def config(app: ASGIApp, at: Address, lifespan: Literal["on", "off"]) -> uvicorn.Config:
        # our logging decides for uvicorn's loggers too (access lines at info)
        host, port = at
        return uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            log_level=None,
            lifespan=lifespan,
            **(proxies or {"proxy_headers": False}),
        )

    async def both() -> None:
        servers = [
            uvicorn.Server(config(main, main_at, "on")),
            uvicorn.Server(config(ops, ops_at, "off")),
        ]
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:  # a signal reaches one server; the other follows it
            server.should_exit = True
        await asyncio.gather(*tasks)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a developer stops it
        asyncio.run(both())
