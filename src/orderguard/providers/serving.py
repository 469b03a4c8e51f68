"""Serving a sandbox: as a process until interrupted, or on a free loopback port in a
thread for the duration of a block (development, the demo, tests). Every provider's
sandbox is served the same way; only its app differs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

#: Seconds to wait for a threaded server to start or stop.
STARTUP_TIMEOUT_S = 10.0
#: The loggers uvicorn writes to.
_UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def server_config(app: Any, *, loop: str = "asyncio", **options: Any) -> uvicorn.Config:
    """uvicorn's settings for a sandbox: one event loop (``loop``: asyncio's unless told),
    HTTP parsed by httptools (C) where installed, no websockets.

    A sandbox in its own process runs on uvloop where installed (``loop="auto"``): with
    httptools instead of asyncio's loop with h11 (pure Python), which it used before, one
    sequential client's charge cost it 0.71 against 0.99 ms of CPU, and a charge under the
    paid benchmark's load 0.92 against 1.03 ms (``docs/profiles/README.md``). One served in
    a thread of another process keeps asyncio's loop (uvicorn would otherwise set up uvloop
    from that thread)."""
    return uvicorn.Config(
        app,
        loop=loop,
        http="auto",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
        **{"log_level": "warning", **options},
    )


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (``orderguard sandbox-provider``)."""
    uvicorn.Server(server_config(app, loop="auto", host=host, port=port)).run()


@contextmanager
def serve_in_thread(app: Any, name: str = "sandbox") -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a thread; yields its base URL."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The process's logging is its host's: no dictConfig, no levels (uvicorn's loggers are
    # global: the host would lose its access lines, and uvicorn's own handlers would bypass
    # its redaction). The sandbox's own lines below warning are left out.
    server = uvicorn.Server(server_config(app, log_config=None, log_level=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"{name}-{port}"
    )
    quiet = _QuietThread(thread.name)
    for logger in _UVICORN_LOGGERS:
        logging.getLogger(logger).addFilter(quiet)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError(f"the {name} server thread did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()
        for logger in _UVICORN_LOGGERS:
            logging.getLogger(logger).removeFilter(quiet)


class _QuietThread(logging.Filter):
    """Drops the records below warning that a thread of that name writes."""

    def __init__(self, thread_name: str) -> None:
        super().__init__()
        self.thread_name = thread_name

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.threadName != self.thread_name
