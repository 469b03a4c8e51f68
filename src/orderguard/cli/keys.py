"""``orderguard keys create|list|revoke``: the shop's API keys and what each may do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from orderguard.cli import common
from orderguard.services import api_keys
from orderguard.services.api_keys import DEFAULT_SCOPES, KeyScope
from orderguard.storage.unit_of_work import SqlStorage

T = TypeVar("T")


def _run(work: Callable[[SqlStorage], Awaitable[T]]) -> T:
    """``work`` on the configured database, as every database-only command runs."""
    return common.run(work)


@click.group()
def keys() -> None:
    """The shop's API keys, each with scopes: what it may do."""


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in KeyScope]),
    help="What the key may do; repeat for several. Default: "
    f"{' '.join(DEFAULT_SCOPES)} (a checkout back-end: place and read orders, no refunds).",
)
def keys_create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; its secret is printed once and never stored."""
    chosen = [KeyScope(s) for s in scopes] or list(DEFAULT_SCOPES)
    key, secret = _run(lambda s: api_keys.create_key(s, name, scopes=chosen))
    click.echo(f"created {key.id} ({key.name})")
    click.echo(f"scopes: {' '.join(key.scopes)}")
    click.echo(f"secret: {secret}")
    click.echo("store the secret now: it cannot be shown again")


@keys.command("list")
def keys_list() -> None:
    """List keys and their scopes (never their secrets)."""
    for key in _run(lambda s: api_keys.list_keys(s)):
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        click.echo(f"{key.id}  {key.prefix}…  {key.name}  {status}  {' '.join(key.scopes)}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    if not _run(lambda s: api_keys.revoke_key(s, key_id)):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"revoked {key_id}")
