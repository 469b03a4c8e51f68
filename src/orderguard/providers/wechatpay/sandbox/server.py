"""Running the sandbox: as a process (:func:`serve`) or on a free loopback port in a thread
(:func:`run_sandbox`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from orderguard.providers.wechatpay.sandbox.app import create_app
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig

#: Seconds to wait for a threaded server to start or stop.
STARTUP_TIMEOUT_S = 10.0


def _config(config: SandboxConfig, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
        **{"log_level": "warning", **options},  # type: ignore[arg-type]
    )


def serve(host: str, port: int, data_dir: str) -> None:
    """Serve the sandbox until interrupted; its identity lives in ``data_dir``."""
    uvicorn.Server(_config(SandboxConfig(data_dir), host=host, port=port)).run()


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """The sandbox on a free 127.0.0.1 port for the duration of the block; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(config, log_config=None, log_level=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"wechatpay-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError("the WeChat Pay sandbox did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()
