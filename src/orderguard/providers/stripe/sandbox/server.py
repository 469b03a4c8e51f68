"""Running the sandbox: as a process (:func:`main`) or on a free loopback port in a thread."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from orderguard.providers.stripe.sandbox.app import create_app
from orderguard.providers.stripe.sandbox.faults import load_profile
from orderguard.providers.stripe.sandbox.service import SandboxConfig

#: Seconds to wait for a threaded server to start or stop.
STARTUP_TIMEOUT_S = 10.0
#: The loggers uvicorn writes to.
_UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _uvicorn_config(app: ASGIApp, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
        **{"log_level": "warning", **options},  # type: ignore[arg-type]
    )


def main(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str,
) -> None:
    """Serve a sandbox until interrupted (``orderguard sandbox-provider``)."""
    config = SandboxConfig(
        db_path=db_path,
        faults=load_profile(faults),
        seed=seed,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    uvicorn.Server(_uvicorn_config(create_app(config), host=host, port=port)).run()


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Serve any ASGI app on a free 127.0.0.1 port in a thread; yields its base URL."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The process's logging is its host's: no dictConfig, no levels (uvicorn's loggers are
    # global: the host would lose its access lines, and uvicorn's own handlers would bypass
    # its redaction). The sandbox's own lines below warning are left out, as before.
    server = uvicorn.Server(_uvicorn_config(app, log_config=None, log_level=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"sandbox-{port}"
    )
    quiet = _QuietThread(thread.name)
    for name in _UVICORN_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    thread.start()
    try:
        _wait_until(lambda: server.started or not thread.is_alive())
        if not server.started:
            raise RuntimeError("the server thread did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()
        for name in _UVICORN_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)


class _QuietThread(logging.Filter):
    """Drops the records below warning that a thread of that name writes."""

    def __init__(self, thread_name: str) -> None:
        super().__init__()
        self.thread_name = thread_name

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.threadName != self.thread_name


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """A sandbox on a free loopback port for the duration of the block; yields its base URL."""
    with serve_in_thread(create_app(config)) as base_url:
        yield base_url


def _wait_until(ready: object) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ready() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
