"""``orderguard serve`` (the HTTP API with a worker, built by ``bootstrap.build_app``) and
``orderguard worker``."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import click

from orderguard import links
from orderguard.cli import common
from orderguard.cli.startup import warn_unverifiable_webhooks
from orderguard.services import api_keys
from orderguard.storage.errors import StorageError

log = logging.getLogger("orderguard")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run a worker in this process.")
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics server (with --metrics-port).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    help="Serve /metrics, /docs and /openapi.json on this port instead of the main one.",
)
def serve(
    host: str, port: int, no_worker: bool, metrics_host: str, metrics_port: int | None
) -> None:
    """Run the HTTP API and a worker (SQLite is migrated on start; PostgreSQL must be
    migrated first)."""
    import uvicorn

    from orderguard.api.app import create_metrics_app
    from orderguard.api.server import proxy_options, serve_beside
    from orderguard.bootstrap import build_app

    settings = common.settings()
    common.checked_for_production(settings)
    warn_unverifiable_webhooks(settings)
    settings = links.linked_to_bind(settings, host, port)
    if (disagreement := links.disagreement(settings, host, port)) is not None:
        log.warning("%s", disagreement)
    keys = common.run(lambda s: api_keys.keys_required(s))
    if not keys:
        if not _is_loopback(host):
            raise click.ClickException(
                f"refusing to listen on {host} without an API key: create one with "
                "`orderguard keys create NAME`, or bind to 127.0.0.1"
            )
        log.warning(
            "no API key configured: accepting requests without a key, on loopback only; "
            "create one with `orderguard keys create NAME`"
        )
    app = build_app(settings=settings, worker=not no_worker, metrics_apart=metrics_port is not None)
    if metrics_port is not None:
        ops = create_metrics_app(app, production=settings.production)
        serve_beside(
            app,
            ops,
            main_at=(host, port),
            ops_at=(metrics_host, metrics_port),
            proxies=proxy_options(settings),
        )
        return
    # Our logging: ORDERGUARD_LOG_LEVEL decides for uvicorn's loggers too (access lines at info).
    uvicorn.run(
        app, host=host, port=port, log_level=None, log_config=None, **proxy_options(settings)
    )


@click.command()
def worker() -> None:
    """Run the background worker: janitor, waiting charges, expiries (until SIGTERM)."""
    import signal

    from orderguard.bootstrap import new_worker, open_sql

    settings = common.settings()
    common.checked_for_production(settings)

    async def run() -> None:
        container = await open_sql(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await new_worker(container).run(stop)
        finally:
            await container.close()

    try:
        asyncio.run(run())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
