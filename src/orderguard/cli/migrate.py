"""``orderguard migrate`` and ``orderguard prune``: the database's schema and upkeep."""

from __future__ import annotations

import asyncio

import click

from orderguard.cli import common
from orderguard.services.maintenance import prune_idempotency_records
from orderguard.storage import migrate as migrations
from orderguard.storage.connect import connect
from orderguard.storage.database import redact_url
from orderguard.storage.errors import StorageError


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
def prune() -> None:
    """Delete idempotency records past their time to live (orders are never deleted)."""
    settings = common.settings()
    count = common.run(lambda s: prune_idempotency_records(s, ttl=settings.idempotency_ttl))
    click.echo(f"pruned {count} idempotency records older than {settings.idempotency_ttl}")
