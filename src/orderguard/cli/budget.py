"""``orderguard budget``: the PostgreSQL connections a deployment of several hosts needs,
against what the server accepts (``storage/budget.py``; ``docs/deployment.md``)."""

from __future__ import annotations

import sys

import click

from orderguard.cli import common
from orderguard.storage.budget import SPARE, Deployment

#: Exit codes: the deployment fits, or it does not.
FITS, EXCEEDS = 0, 1


@click.command()
@click.option(
    "--api-hosts",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Hosts running `orderguard serve`.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="`serve --processes` on each of them.",
)
@click.option("--no-worker", is_flag=True, help="They run `serve --no-worker`.")
@click.option(
    "--worker-hosts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Hosts running `orderguard worker`.",
)
@click.option(
    "--relays",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="`orderguard outbox relay` processes.",
)
@click.option(
    "--spare",
    type=click.IntRange(min=0),
    default=SPARE,
    show_default=True,
    help="Connections kept for short commands (migrate, sweep, doctor, psql).",
)
@click.option("--max-connections", type=click.IntRange(min=1), default=None,
              help="Check against this server limit (minus 3 reserved) instead of asking "
              "the configured database.")  # fmt: skip
def budget(
    api_hosts: int,
    processes: int,
    no_worker: bool,
    worker_hosts: int,
    relays: int,
    spare: int,
    max_connections: int | None,
) -> None:
    """Print the connections the deployment's pools may open (ORDERGUARD_DB_POOL_SIZE each)
    against what PostgreSQL accepts. Exit 0 when it fits, 1 when it does not."""
    settings = common.settings()
    deployment = Deployment(
        api_hosts=api_hosts,
        processes=processes,
        worker_beside_api=not no_worker,
        worker_hosts=worker_hosts,
        relays=relays,
        pool_size=settings.db_pool_size,
        spare=spare,
    )
    click.echo(f"needed: {deployment.formula()}")
    available, source = _available(settings.database_url, max_connections)
    if available is None:
        click.echo("SQLite: one file and one writer, no connection budget")
        sys.exit(FITS)
    click.echo(f"available: {source}")
    if deployment.needed > available:
        click.echo(
            f"EXCEEDS by {deployment.needed - available}: lower ORDERGUARD_DB_POOL_SIZE or "
            "the processes, or raise max_connections"
        )
        sys.exit(EXCEEDS)
    click.echo(f"fits, {available - deployment.needed} to spare")
    sys.exit(FITS)


#: What ``superuser_reserved_connections`` is unless configured otherwise.
DEFAULT_RESERVED = 3


def _available(database_url: str, max_connections: int | None) -> tuple[int | None, str]:
    """Connections ordinary roles may open, and where that was read."""
    if max_connections is not None:
        available = max_connections - DEFAULT_RESERVED
        return (
            available,
            f"{max_connections} max_connections - {DEFAULT_RESERVED} reserved = {available}",
        )
    room = common.room_of(database_url)
    if room is None:
        return None, ""
    return room.available, (
        f"{room.max_connections} max_connections - {room.reserved} reserved = "
        f"{room.available} (the server's settings; {room.in_use} open now)"
    )
