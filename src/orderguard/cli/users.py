"""``orderguard users add|list|remove|passwd``: who may log in to the support console."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import click

from orderguard.config import ConfigError, Settings
from orderguard.services.console_users import ConsoleUsers, InvalidUser, Role, UserExists, policy
from orderguard.storage.errors import StorageError
from orderguard.storage.opening import open_storage
from orderguard.storage.ports import ConsoleUser

T = TypeVar("T")


def _run(work: Callable[[ConsoleUsers], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            settings = Settings.load()
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from None
        storage = await open_storage(settings)
        try:
            users = ConsoleUsers(
                storage.console,
                policy(
                    max_failed_logins=settings.console_max_failed_logins,
                    lockout_minutes=settings.console_lockout_minutes,
                    session_hours=settings.console_session_hours,
                ),
            )
            return await work(users)
        finally:
            await storage.close()

    try:
        return asyncio.run(main())
    except (StorageError, InvalidUser) as exc:
        raise click.ClickException(str(exc)) from None
    except UserExists as exc:
        raise click.ClickException(f"user {exc} exists already") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@click.group()
def users() -> None:
    """Manage who may log in to the support console (/console)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.OPERATOR.value,
    show_default=True,
    help="viewer reads; operator and admin also act on orders.",
)
@_STDIN
def add(name: str, role: str, password_stdin: bool) -> None:
    """Add a console user (asks for the password)."""
    password = _password(password_stdin)
    user = _run(lambda u: u.add(name, password, role))
    click.echo(f"added {user.name} ({user.role})")


@users.command("list")
def list_users() -> None:
    """List console users with their role and whether they are locked out."""

    async def listed(users: ConsoleUsers) -> list[tuple[ConsoleUser, datetime | None]]:
        return [(user, await users.locked_until(user.name)) for user in await users.store.users()]

    for user, until in _run(listed):
        locked = f"  locked until {until:%Y-%m-%d %H:%M:%S}" if until else ""
        click.echo(f"{user.name}  {user.role}  since {user.created_at:%Y-%m-%d}{locked}")


@users.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove a console user and end their sessions."""
    if not _run(lambda u: u.store.remove_user(name)):
        raise click.ClickException(f"no user {name}")
    click.echo(f"removed {name}")


@users.command("passwd")
@click.argument("name")
@_STDIN
def passwd(name: str, password_stdin: bool) -> None:
    """Set a user's password; this also unlocks them and ends their sessions."""
    password = _password(password_stdin)
    if not _run(lambda u: u.passwd(name, password)):
        raise click.ClickException(f"no user {name}")
    click.echo(f"password changed for {name}")
