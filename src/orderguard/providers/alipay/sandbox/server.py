"""Running the sandbox: on a free loopback port in a thread (tests, development) or as a
process (:func:`serve`, :func:`main`: ``python -m orderguard.providers.alipay.sandbox``)."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import uvicorn

from orderguard.providers.alipay.sandbox.app import create_app
from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys, settings_for

#: Seconds to wait for a threaded server to start or stop.
STARTUP_TIMEOUT_S = 10.0


def _config(app: object, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
        **{"log_level": "warning", **options},  # type: ignore[arg-type]
    )


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """A sandbox on a free 127.0.0.1 port for the duration of the block; yields its base URL
    (the gateway is ``{url}/gateway.do``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(create_app(config), log_config=None, log_level=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"alipay-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError("the Alipay sandbox did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()


def serve(host: str, port: int, data_dir: str, app_public_key: str | None = None) -> None:
    """Serve the sandbox until interrupted; ``app_public_key`` (PEM, base64 or a file) when
    the app signs with a key of its own rather than the data directory's test app key."""
    app = create_app(SandboxConfig(data_dir=data_dir, app_public_key=app_public_key))
    uvicorn.Server(_config(app, host=host, port=port)).run()


def print_config(host: str, port: int, data_dir: str) -> str:
    """The ``ORDERGUARD_ALIPAY_*`` lines pointing orderguard at a sandbox served so
    (the keys are made now if the data directory has none)."""
    config = SandboxConfig(data_dir=data_dir)
    found = settings_for(config, load_keys(config), f"http://{host}:{port}")
    return "\n".join(f"{name}={value}" for name, value in found.items())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m orderguard.providers.alipay.sandbox [--print-config]``."""
    parser = argparse.ArgumentParser(description="An Alipay-compatible sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", default="./orderguard-alipay-sandbox")
    parser.add_argument("--app-public-key", help="the app's public key (PEM, base64 or file)")
    parser.add_argument("--print-config", action="store_true", help="print the settings, exit")
    args = parser.parse_args(argv)
    if args.print_config:
        print(print_config(args.host, args.port, args.data_dir))
        return
    serve(args.host, args.port, args.data_dir, args.app_public_key)
