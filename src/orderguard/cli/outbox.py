"""The CLI of the outbox: ``orderguard outbox list|replay|status|relay`` and
``orderguard endpoints add|list|remove|rotate-secret`` (merchant webhooks)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click

from orderguard.config import ConfigError, Settings
from orderguard.domain import ids
from orderguard.domain.delivery import Delivery, WebhookEndpoint, WebhookSecret
from orderguard.outbox.sinks import SinkMisconfigured
from orderguard.services.outbox import (
    OutboxSupport,
    UnknownEvent,
    configured_sinks,
    outbox_health,
)
from orderguard.storage.errors import StorageError
from orderguard.storage.opening import open_storage
from orderguard.storage.ports import UnitOfWorkFactory

T = TypeVar("T")


def _run(work: Callable[[Settings, UnitOfWorkFactory], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = Settings.load()
        storage = await open_storage(settings)
        try:
            return await work(settings, storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(main())
    except (ConfigError, SinkMisconfigured) as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    except (StorageError, UnknownEvent) as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def outbox() -> None:
    """Events on their way to email, merchant webhooks and the stream."""


@outbox.command("list")
@click.option("--dead", is_flag=True, help="Only dead letters (given up; replay them).")
@click.option("--sink", default=None, help="Only this sink: email, stream, webhook:<id>.")
@click.option("--order", "order_id", default=None, help="Only this order's events.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_(dead: bool, sink: str | None, order_id: str | None, limit: int) -> None:
    """Deliveries, newest event first, with their attempts and last error."""

    async def work(settings: Settings, storage: UnitOfWorkFactory) -> list[Delivery]:
        support = OutboxSupport(storage)
        if order_id:
            found = await support.deliveries_of_order(order_id)
            return [d for d in found if not dead or d.state == "dead"][:limit]
        if dead:
            return await support.dead_letters(sink=sink, limit=limit)
        return await support.recent(sink=sink, limit=limit)

    rows = _run(work)
    for d in rows:
        error = f"  {d.last_error}" if d.last_error else ""
        click.echo(
            f"{d.event.id}  {d.event.type}  {d.event.order_id}  {d.sink}  {d.state}  "
            f"attempts={d.attempts}{error}"
        )
    if not rows:
        click.echo("no deliveries")


@outbox.command()
@click.argument("event_id", required=False)
@click.option("--all-dead", is_flag=True, help="Every dead letter (of --sink, if given).")
@click.option("--sink", default=None, help="Only this sink; with EVENT_ID, resend there.")
def replay(event_id: str | None, all_dead: bool, sink: str | None) -> None:
    """Deliver dead letters again (fresh attempts). EVENT_ID with --sink resends that event
    to that sink even if it was delivered."""
    if bool(event_id) == all_dead:
        raise click.UsageError("give either EVENT_ID or --all-dead")

    async def work(settings: Settings, storage: UnitOfWorkFactory) -> int:
        known = await configured_sinks(settings, storage)
        if sink is not None and sink not in known:
            raise click.BadParameter(
                f"{sink!r} is not a configured sink (configured: {', '.join(known) or 'none'})",
                param_hint="--sink",
            )
        support = OutboxSupport(storage)
        if event_id:
            return await support.replay_event(event_id, sink=sink)
        return await support.replay_dead(sink=sink)

    count = _run(work)
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")


@outbox.command()
def status() -> None:
    """Lag (age of the oldest undelivered event) and dead letters of each configured sink."""

    async def work(settings: Settings, storage: UnitOfWorkFactory) -> list[str]:
        health = await outbox_health(settings, storage)
        return [f"{h.sink}  lag={h.lag_seconds:.1f}s  dead={h.dead_letters}" for h in health]

    lines = _run(work)
    click.echo("\n".join(lines) if lines else "no sink configured: events are not relayed")


@outbox.command()
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--every", type=float, default=1.0, show_default=True, help="Seconds per round.")
def relay(once: bool, every: float) -> None:
    """Run only the outbox relay (the worker runs it too) until SIGTERM."""
    from orderguard.outbox.configured import build_relay
    from orderguard.worker import new_worker_id

    owner = new_worker_id()

    async def work(settings: Settings, storage: UnitOfWorkFactory) -> None:
        relay = build_relay(settings, storage)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"outbox relay {owner} running", err=True)
        try:
            while not stop.is_set():
                report = await relay.run_once(owner=owner, stop=stop)
                if once:
                    click.echo(
                        f"delivered {report.delivered}, failed {report.failed}, dead {report.dead}"
                    )
                    return
                try:
                    await asyncio.wait_for(stop.wait(), timeout=every)
                except TimeoutError:
                    pass
        finally:
            await relay.aclose()

    _run(work)


@click.group()
def endpoints() -> None:
    """Merchant endpoints that receive signed webhooks (Standard Webhooks)."""


@endpoints.command("add")
@click.argument("url")
@click.option("--description", default="", help="A note for people (whose endpoint it is).")
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow loopback and private addresses (a receiver on this host or your own "
    "network); its answers' bodies are not kept.",
)
def endpoints_add(url: str, description: str, allow_private: bool) -> None:
    """Send every event to URL (http or https, resolving to public addresses only unless
    --allow-private); prints the endpoint id and its signing secret (shown once)."""
    from orderguard.outbox.egress import EgressRefused, check_endpoint_url, system_resolver
    from orderguard.outbox.merchant_webhooks import new_secret

    try:
        asyncio.run(check_endpoint_url(url, allow_private=allow_private, resolver=system_resolver))
    except EgressRefused as exc:
        raise click.ClickException(f"endpoint refused: {exc}") from None
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        ids.new_id("wep"), url, now, description, allow_private=allow_private
    )
    secret = WebhookSecret(ids.new_id("whs"), endpoint.id, new_secret(), now)

    async def add(_s: Settings, storage: UnitOfWorkFactory) -> None:
        async with storage() as uow:
            await uow.endpoints.add(endpoint, secret)
            await uow.commit()

    _run(add)
    click.echo(f"{endpoint.id}  {url}")
    click.echo(f"signing secret: {secret.secret}")


@endpoints.command("list")
@click.option("--all", "everything", is_flag=True, help="Include removed endpoints.")
def endpoints_list(everything: bool) -> None:
    """The endpoints, oldest first."""

    async def work(_s: Settings, storage: UnitOfWorkFactory) -> list[WebhookEndpoint]:
        async with storage.reader() as uow:
            return await (uow.endpoints.all() if everything else uow.endpoints.active())

    found = _run(work)
    for e in found:
        removed = f"removed {e.removed_at:%Y-%m-%d %H:%M}" if e.removed_at else ""
        private = "(allow-private)" if e.allow_private else ""
        click.echo("  ".join(p for p in (e.id, e.url, e.description, private, removed) if p))
    if not found:
        click.echo("no endpoints")


@endpoints.command("remove")
@click.argument("endpoint_id")
def endpoints_remove(endpoint_id: str) -> None:
    """Stop sending to an endpoint (its delivery history is kept)."""
    now = datetime.now(UTC)

    async def remove(_s: Settings, storage: UnitOfWorkFactory) -> bool:
        async with storage() as uow:
            removed = await uow.endpoints.remove(endpoint_id, at=now)
            await uow.commit()
        return removed

    if not _run(remove):
        raise click.ClickException(f"no active endpoint {endpoint_id}")
    click.echo(f"removed {endpoint_id}")


@endpoints.command("rotate-secret")
@click.argument("endpoint_id")
@click.option(
    "--overlap-hours",
    type=click.FloatRange(min=0),
    default=None,
    help="Hours the old secret still signs too [default: WEBHOOK_SECRET_OVERLAP_HOURS].",
)
def rotate_secret(endpoint_id: str, overlap_hours: float | None) -> None:
    """Give an endpoint a new signing secret; both are sent during the overlap."""
    from orderguard.outbox.merchant_webhooks import new_secret

    now = datetime.now(UTC)
    secret = WebhookSecret(ids.new_id("whs"), endpoint_id, new_secret(), now)

    async def work(settings: Settings, storage: UnitOfWorkFactory) -> tuple[bool, datetime]:
        hours = settings.webhook_secret_overlap_hours if overlap_hours is None else overlap_hours
        until = now + timedelta(hours=hours)
        async with storage() as uow:
            rotated = await uow.endpoints.rotate(secret, old_expire_at=until)
            await uow.commit()
        return rotated, until

    rotated, until = _run(work)
    if not rotated:
        raise click.ClickException(f"no active endpoint {endpoint_id}")
    click.echo(f"new signing secret: {secret.secret}")
    click.echo(f"the previous secret signs too until {until:%Y-%m-%d %H:%M} UTC")
