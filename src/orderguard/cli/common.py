"""What the CLI's command modules share: the settings (or exit 2), the production check
before a long-running start, work on the configured database, durations and flags as
printed. No command module imports another; they import this."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import click

from orderguard.cli.startup import load_settings, refuse, refuse_unsafe_production
from orderguard.config import Settings
from orderguard.domain.order import Order
from orderguard.services import api_keys
from orderguard.storage.budget import Deployment, ServerRoom, Verdict, server_room, verdict
from orderguard.storage.connect import connect
from orderguard.storage.errors import StorageError
from orderguard.storage.opening import open_storage
from orderguard.storage.unit_of_work import SqlStorage

T = TypeVar("T")
log = logging.getLogger("orderguard")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def settings() -> Settings:
    """The settings; a configuration error is one line on stderr and exit code 2."""
    return load_settings()


def checked_for_production(settings: Settings) -> None:
    """Refuse to go on (exit 2, one line) unless the deployment is safe for its mode: a
    live key in development, or any unsafe default in production."""
    # what the settings alone show is refused before the database is even opened
    refuse_unsafe_production(settings, active_api_keys=1)
    if settings.production:
        active = run(lambda s: api_keys.count_active_keys(s))
        refuse_unsafe_production(settings, active_api_keys=active)


def run(work: Callable[[SqlStorage], Awaitable[T]], *, auto_migrate: bool | None = None) -> T:
    """Run ``work`` on the configured database (no payment providers needed)."""

    async def main() -> T:
        storage = await open_storage(settings(), auto_migrate=auto_migrate)
        try:
            return await work(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(main())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


def room_of(database_url: str) -> ServerRoom | None:
    """What the PostgreSQL server at ``database_url`` accepts (None on SQLite)."""
    if database_url.startswith("sqlite"):
        return None

    async def read() -> ServerRoom | None:
        db = await connect(database_url, pool_size=1)
        try:
            return await server_room(db)
        finally:
            await db.close()

    try:
        return asyncio.run(read())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


def checked_connections(settings: Settings, here: Deployment) -> None:
    """Before a long-running start: when the pools of ``here`` (this host's processes) may
    open more connections than the server accepts at all, refuse in production (exit 2,
    one line) and warn in development; warn when they do not fit beside the connections
    other processes hold now. A pool past the limit fails when the shop is busiest."""
    room = room_of(settings.database_url)
    if room is None:
        return
    fix = (
        "lower ORDERGUARD_DB_POOL_SIZE or the processes, or raise max_connections "
        "(see `orderguard budget`)"
    )
    found = verdict(here, room)
    if found is Verdict.EXCEEDS:
        line = (
            f"this host's {here.pools} pools of ORDERGUARD_DB_POOL_SIZE={here.pool_size} may "
            f"open {here.needed} connections, more than the {room.available} PostgreSQL "
            f"accepts (max_connections {room.max_connections} - {room.reserved} reserved): "
            f"{fix}"
        )
        if settings.production:
            refuse(f"orderguard: production: {line}")
        log.warning("%s", line)
    elif found is Verdict.CROWDED:
        log.warning(
            "this host's pools may open %d connections; with the %d others open now that is "
            "more than the %d PostgreSQL accepts: %s",
            here.needed, room.in_use - 1, room.available, fix,
        )  # fmt: skip


def duration(text: str) -> timedelta:
    """``30s``, ``10m``, ``2h`` or ``1d`` as a time span; raises ``click.BadParameter``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def flagged(order: Order) -> str:
    """The order's open review flags, for a line of output ("" when it has none)."""
    texts = [flag.text for flag in order.open_flags]
    return f"  FLAGGED: {' | '.join(texts)}" if texts else ""
