"""Running the sandbox: as a process (:func:`main`) or on a free loopback port in a thread
(:func:`run_sandbox`), both by :mod:`orderguard.providers.serving`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orderguard.providers.serving import serve_forever, serve_in_thread
from orderguard.providers.stripe.sandbox.app import create_app
from orderguard.providers.stripe.sandbox.faults import load_profile
from orderguard.providers.stripe.sandbox.service import SandboxConfig

__all__ = ["main", "run_sandbox", "serve_in_thread"]


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
    serve_forever(create_app(config), host, port)


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """A sandbox on a free loopback port for the duration of the block; yields its base URL."""
    with serve_in_thread(create_app(config)) as base_url:
        yield base_url
