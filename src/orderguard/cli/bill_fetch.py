"""``orderguard reconcile --fetch PROVIDER --date D``: a wallet's daily bill, downloaded
through a configured account into a directory, for reconcile to read like a file given.

The day is a China day (the providers' bills are): one not over there is refused before
anything is sent. The account is the provider's configured one (``--account`` names
another); its adapter downloads and checks the bill (``providers/bills.py``), and every
failure is a :class:`click.ClickException` headed in the run's language.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

import click

from orderguard.providers import registry
from orderguard.providers.bills import CHINA, BillError, BillSource
from orderguard.providers.plugin import Account, ProviderPlugin
from orderguard.reconcile.messages import text

#: Seconds a bill download may take (a day's bill is larger than an API answer).
TIMEOUT_S = 60.0


#: The zone a bill's day is counted in: China Standard Time, where the bills are made.
BILL_ZONE: tzinfo = CHINA


def today_in_china() -> date:
    """Today's date where the bills are made."""
    return datetime.now(CHINA).date()


def bill_day(value: str, *, today: date, locale: str = "en") -> date:
    """``value`` (``YYYY-MM-DD``) when its bill can exist: a day over in China."""
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise click.BadParameter(text("fetch_bad_date", locale).format(value=value))
    if day > today:
        raise click.BadParameter(text("fetch_future", locale).format(day=day, today=today))
    if day == today:
        raise click.BadParameter(text("fetch_today", locale).format(day=day))
    return day


def choose_account(
    settings: Any, provider: str, name: str | None, *, locale: str = "en"
) -> tuple[ProviderPlugin, Account]:
    """The configured account of ``provider`` (named ``name``, else its main one)."""
    known = [(p, a) for p, a in registry.accounts(settings) if p.name == provider]
    configured = [(p, a) for p, a in known if a.api_key]
    if name is not None:
        named = [(p, a) for p, a in configured if a.name == name]
        if not named:
            names = ", ".join(a.name for _, a in configured) or "-"
            message = text("fetch_no_account", locale).format(name=name, names=names)
            raise click.ClickException(message)
        return named[0]
    if not configured:
        variable = known[0][1].key_variable if known else f"ORDERGUARD_{provider.upper()}_*"
        message = text("fetch_unconfigured", locale).format(provider=provider, variable=variable)
        raise click.ClickException(message)
    return configured[0]


def safe_name(name: str) -> str:
    """A file name from the network, as one plain file name (never a path)."""
    plain = PurePosixPath(name.replace("\\", "/")).name
    if plain in ("", ".", "..") or plain.startswith("."):
        raise click.ClickException(f"refused bill file name {name!r}")
    return plain


async def _download(plugin: ProviderPlugin, account: Account, day: date) -> list[Any]:
    adapter = plugin.build(account, TIMEOUT_S)
    try:
        if not isinstance(adapter, BillSource):
            raise click.ClickException(f"{plugin.title} has no daily bill orderguard can fetch")
        return await adapter.download_bill(day)
    finally:
        await adapter.aclose()


def download(
    plugin: ProviderPlugin, account: Account, day: date, into: Path, *, locale: str = "en"
) -> list[Path]:
    """Download ``day``'s bill through ``account`` into ``into``; the files written."""
    try:
        files = asyncio.run(_download(plugin, account, day))
    except BillError as exc:
        raise click.ClickException(f"{text(exc.kind, locale)}: {exc}") from None
    except (ValueError, OSError) as exc:
        heading = text("fetch_account_unusable", locale).format(account=account.name)
        raise click.ClickException(f"{heading}: {exc}") from None
    return [keep(found.name, found.content, into) for found in files]


def keep(name: str, content: bytes, into: Path) -> Path:
    """Write a downloaded file into ``into`` under its own (plain) name, replacing the
    file a former download left there, never writing through a link."""
    path = into / safe_name(name)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise click.ClickException(f"{path} is not a plain file: the bill is not written there")
    partial = path.with_name(path.name + ".part")
    partial.unlink(missing_ok=True)
    with partial.open("xb") as sink:
        sink.write(content)
    partial.replace(path)
    return path
