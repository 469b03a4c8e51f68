"""``orderguard migrate`` and ``orderguard prune``: the database's schema and upkeep."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import click

from orderguard.cli import common
from orderguard.config import Settings
from orderguard.services.maintenance import count_idempotency_records, prune_idempotency_records
from orderguard.services.retention import (
    Pruned,
    RetentionPolicy,
    count_retained,
    prune_retained,
)
from orderguard.storage import migrate as migrations
from orderguard.storage.connect import connect
from orderguard.storage.database import redact_url
from orderguard.storage.errors import StorageError
from orderguard.storage.ports import UnitOfWorkFactory


@click.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run repeatedly and concurrently)."""
    settings = common.settings()

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


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
def prune(dry_run: bool) -> None:
    """Delete idempotency records past their time to live and apply retention: delivered
    outbox rows and processed webhook bodies older than their retention (orders, attempts,
    timelines and refunds are never deleted)."""
    settings = common.settings()
    policy = RetentionPolicy(
        outbox=settings.outbox_retention,
        webhook_bodies=settings.webhook_body_retention,
        batch=settings.retention_batch,
    )
    if dry_run:
        keys, pruned = common.run(lambda s: _counted(s, settings.idempotency_ttl, policy))
    else:
        keys, pruned = common.run(lambda s: _pruned(s, settings.idempotency_ttl, policy))
    for line in pruned_lines(keys, pruned, settings, dry_run=dry_run):
        click.echo(line)


async def _pruned(
    storage: UnitOfWorkFactory, ttl: timedelta, policy: RetentionPolicy
) -> tuple[int, Pruned]:
    keys = await prune_idempotency_records(storage, ttl=ttl)
    return keys, await prune_retained(storage, policy)


async def _counted(
    storage: UnitOfWorkFactory, ttl: timedelta, policy: RetentionPolicy
) -> tuple[int, Pruned]:
    keys = await count_idempotency_records(storage, ttl=ttl)
    return keys, await count_retained(storage, policy)


def pruned_lines(keys: int, pruned: Pruned, settings: Settings, *, dry_run: bool) -> list[str]:
    """What ``prune`` says it did (or, for a dry run, would do), one line per kind of row."""
    verb = "would prune" if dry_run else "pruned"
    lines = [f"{verb} {keys} idempotency records older than {settings.idempotency_ttl}"]
    outbox_days = settings.outbox_retention_days
    if outbox_days:
        lines.append(
            f"{verb} {pruned.deliveries} outbox deliveries and {pruned.events} outbox events "
            f"delivered more than {outbox_days} days ago"
        )
    else:
        lines.append("outbox retention is off (outbox_retention_days = 0): nothing deleted")
    body_days = settings.webhook_body_retention_days
    if body_days:
        lines.append(
            f"{verb} the bodies of {pruned.webhook_bodies} webhook events processed more "
            f"than {body_days} days ago (their event ids are kept to refuse duplicates)"
        )
    else:
        lines.append("webhook retention is off (webhook_body_retention_days = 0): bodies kept")
    if dry_run:
        lines.append("dry run: nothing was changed")
    return lines
