"""Running the sandbox: as a process (:func:`serve`) or on a free loopback port in a thread
(:func:`run_sandbox`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orderguard.providers.serving import serve_forever, serve_in_thread
from orderguard.providers.wallet_faults import load_profile
from orderguard.providers.wechatpay.sandbox.app import create_app
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig


def serve(host: str, port: int, data_dir: str, *, faults: str = "none", seed: int = 0) -> None:
    """Serve the sandbox until interrupted; its identity lives in ``data_dir``; ``faults``:
    a fault profile's name or TOML file, its dice seeded with ``seed``."""
    config = SandboxConfig(data_dir, faults=load_profile(faults), seed=seed)
    serve_forever(create_app(config), host, port)


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """The sandbox on a free 127.0.0.1 port for the duration of the block; yields its URL."""
    with serve_in_thread(create_app(config), "wechatpay") as base_url:
        yield base_url
