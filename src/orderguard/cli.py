"""The ``orderguard`` command."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from orderguard import (
    __version__,
    cli_audit,
    cli_doctor,
    cli_keys,
    cli_operations,
    cli_outbox,
    cli_reconcile,
    cli_users,
    links,
)
from orderguard.bootstrap import open_storage
from orderguard.cli_startup import (
    load_settings,
    refuse_unsafe_production,
    warn_unverifiable_webhooks,
)
from orderguard.config import PLANTED_DEFECTS, Settings
from orderguard.domain.errors import OrderNotFound
from orderguard.domain.states import OrderState
from orderguard.observability.logs import configure_logging
from orderguard.providers import registry
from orderguard.services import api_keys, queries
from orderguard.services.maintenance import prune_idempotency_records
from orderguard.storage import migrate as migrations
from orderguard.storage.connect import connect
from orderguard.storage.database import redact_url
from orderguard.storage.errors import StorageError
from orderguard.storage.ports import OrderQuery
from orderguard.storage.unit_of_work import SqlStorage

T = TypeVar("T")
log = logging.getLogger("orderguard")


def _settings() -> Settings:
    """The settings; a configuration error is one line on stderr and exit code 2."""
    return load_settings()


def _checked_for_production(settings: Settings) -> None:
    """Refuse to go on (exit 2, one line) unless the deployment is safe for its mode: a
    live key in development, or any unsafe default in production."""
    # what the settings alone show is refused before the database is even opened
    refuse_unsafe_production(settings, active_api_keys=1)
    if settings.production:
        active = _run(lambda s: api_keys.count_active_keys(s))
        refuse_unsafe_production(settings, active_api_keys=active)


def _run(work: Callable[[SqlStorage], Awaitable[T]], *, auto_migrate: bool | None = None) -> T:
    """Run ``work`` on the configured database (no payment providers needed)."""

    async def main() -> T:
        storage = await open_storage(_settings(), auto_migrate=auto_migrate)
        try:
            return await work(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(main())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="orderguard")
def main() -> None:
    """orderguard: no order is lost between checkout, payment provider and database."""
    configure_logging()


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run repeatedly and concurrently)."""
    settings = _settings()

    async def work() -> list[migrations.Migration]:
        db = await connect(settings.database_url)
        try:
            return await migrations.migrate(db)
        finally:
            await db.close()

    try:
        applied = asyncio.run(work())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    target = redact_url(settings.database_url)
    for m in applied:
        click.echo(f"applied {m.version:04d}_{m.name}")
    click.echo(f"{target} is at schema version {migrations.latest_version()}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run a worker in this process.")
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the operations server (with --metrics-port).",
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

    from orderguard.api.app import create_app, create_ops_app
    from orderguard.api.server import proxy_options, serve_beside

    settings = _settings()
    _checked_for_production(settings)
    warn_unverifiable_webhooks(settings)
    settings = links.linked_to_bind(settings, host, port)
    if (disagreement := links.disagreement(settings, host, port)) is not None:
        log.warning("%s", disagreement)
    keys = _run(lambda s: api_keys.keys_required(s))
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
    app = create_app(settings=settings, worker=not no_worker, ops_apart=metrics_port is not None)
    if metrics_port is not None:
        ops = create_ops_app(app, production=settings.production)
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


@main.command()
def worker() -> None:
    """Run the background worker: janitor, waiting charges, expiries (until SIGTERM)."""
    import signal

    from orderguard.bootstrap import open_sql
    from orderguard.worker import Worker

    settings = _settings()
    _checked_for_production(settings)

    async def run() -> None:
        container = await open_sql(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Worker(container).run(stop)
        finally:
            await container.close()

    try:
        asyncio.run(run())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def prune() -> None:
    """Delete idempotency records past their time to live (orders are never deleted)."""
    settings = _settings()
    count = _run(lambda s: prune_idempotency_records(s, ttl=settings.idempotency_ttl))
    click.echo(f"pruned {count} idempotency records older than {settings.idempotency_ttl}")


@main.group()
def orders() -> None:
    """Find and inspect orders."""


@orders.command("list")
@click.option("--state", type=click.Choice([s.value for s in OrderState]))
@click.option(
    "--stuck", is_flag=True, help="Only stuck orders: payments waiting on the provider, unchanged."
)
@click.option("--older-than", default="30m", show_default=True, help="Unchanged for how long.")
@click.option("--flagged", is_flag=True, help="Only orders in the review queue.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def orders_list(state: str | None, stuck: bool, older_than: str, flagged: bool, limit: int) -> None:
    """List orders, newest first."""
    since = datetime.now(UTC) - cli_operations.duration(older_than) if stuck else None
    query = OrderQuery(
        limit=limit,
        state=OrderState(state) if state else None,
        flagged=flagged,
        stuck_since=since,
    )
    for order in _run(lambda s: queries.list_orders(s, query)):
        ref = order.merchant_reference or "-"
        flag = cli_operations.flagged(order)
        click.echo(
            f"{order.id}  {order.created_at:%Y-%m-%d %H:%M:%S}  {order.state:<16} "
            f"{order.total.format():>14}  {ref}{flag}"
        )


for _command in (cli_operations.recheck, cli_operations.refund, cli_operations.cancel):
    orders.add_command(_command)
main.add_command(cli_operations.sweep)
main.add_command(cli_users.users)
main.add_command(cli_keys.keys)
cli_outbox.register(main)
main.add_command(cli_doctor.doctor)
main.add_command(cli_audit.audit)
main.add_command(cli_reconcile.reconcile)


@orders.command("show")
@click.argument("order_id")
def orders_show(order_id: str) -> None:
    """Show one order with its timeline."""
    try:
        detail = _run(lambda s: queries.order_detail(s, order_id))
    except OrderNotFound as exc:
        raise click.ClickException(str(exc)) from None
    order = detail.order
    click.echo(f"{order.id}  {order.state}  {order.total.format()}")
    for line in order.lines:
        click.echo(f"  {line.quantity} x {line.sku} {line.name}  {line.unit_amount}")
    for e in detail.timeline:
        source = e.from_state or "-"
        click.echo(f"  {e.at:%Y-%m-%d %H:%M:%S}  {source} -> {e.to_state}  [{e.cause}] {e.note}")


@main.command()
@click.option("--orders", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--seed",
    default="42",
    show_default=True,
    help="The shoppers' and the faults' dice: a number to replay a run, or 'random'.",
)
@click.option(
    "--faults",
    default="storm",
    show_default=True,
    help="The sandbox's fault profile: none, flaky, storm, or a TOML file.",
)
@click.option("--concurrency", default=96, show_default=True, type=click.IntRange(1, 500))
@click.option("--database-url", default=None, help="Default: a fresh SQLite file.")
@click.option("--json", "json_out", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--settle-timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds to wait for every order to be resolved after the last checkout.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the databases and logs in this folder.",
)
@click.option("--plant-defect", default=None, hidden=True, type=click.Choice(PLANTED_DEFECTS))
@click.option(
    "--refund-share",
    default=0.08,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the checkouts that can end paid whose order the back office then refunds "
    "(a part, then the rest).",
)
def demo(
    orders: int,
    seed: str,
    faults: str,
    concurrency: int,
    database_url: str | None,
    json_out: bool,
    settle_timeout: float,
    keep: Path | None,
    plant_defect: str | None,
    refund_share: float,
) -> None:
    """Shoppers, a storm of provider faults, and the proof that no order was lost.

    Starts the server (with its worker) on a fresh SQLite file and a sandbox provider with
    the storm profile, places orders over HTTP as real shoppers do, waits until every order
    is resolved, and checks the invariants against the database and the provider's ledger.
    Exit code 0 if and only if every invariant holds.
    """
    from orderguard.demo import DemoOptions, run_demo

    if seed != "random" and not seed.isdigit():
        raise click.BadParameter("a whole number or 'random'", param_hint="--seed")
    options = DemoOptions(
        orders=orders,
        seed=None if seed == "random" else int(seed),
        faults=faults,
        concurrency=concurrency,
        database_url=database_url,
        json_out=json_out,
        settle_timeout_s=settle_timeout,
        planted_defect=plant_defect,
        keep=keep,
        refund_share=refund_share,
    )
    sys.exit(asyncio.run(run_demo(options)))


@main.command(
    "sandbox-provider",
    help=f"Run the {registry.sandbox_plugin().title}-compatible sandbox provider "
    "(test keys: any sk_test_...).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option(
    "--faults",
    default="none",
    show_default=True,
    help="A profile (none, flaky, storm) or the path of a TOML profile.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seeds every fault stream: the same seed gives the same faults.",
)
@click.option(
    "--db",
    "db_path",
    default="./sandbox-provider.db",
    show_default=True,
    help="The sandbox's own ledger (SQLite).",
)
@click.option("--webhook-url", default=None, help="Where to send signed webhooks.")
@click.option(
    "--webhook-secret",
    default=None,
    help="What webhooks are signed with; give orderguard the same one in "
    f"{registry.sandbox_secret_variable()}. Default: a fresh random secret, printed at start.",
)
def sandbox_provider(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> None:
    from orderguard.bootstrap import sandbox_webhook_secret

    if webhook_secret is None:
        webhook_secret = sandbox_webhook_secret()
        click.echo(f"sandbox-provider: webhooks are signed with {webhook_secret}", err=True)
    registry.serve_sandbox(host, port, faults, seed, db_path, webhook_url, webhook_secret)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
