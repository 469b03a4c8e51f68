"""``orderguard reconcile``: settlement reports against the orders."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import click
from rich.console import Console

from orderguard.cli import bill_fetch
from orderguard.config import ConfigError, Settings
from orderguard.providers import registry
from orderguard.reconcile import formats
from orderguard.reconcile.apply import apply
from orderguard.reconcile.engine import EngineOptions
from orderguard.reconcile.mapping import MappingError
from orderguard.reconcile.messages import LOCALES
from orderguard.reconcile.report import (
    print_summary,
    summary_path,
    write_exceptions,
    write_html,
)
from orderguard.reconcile.run import Request
from orderguard.reconcile.run import reconcile as run_reconcile
from orderguard.storage.errors import StorageError
from orderguard.storage.opening import open_storage

#: Every settlement report format ``--format`` takes: those the registered providers
#: publish, then reconcile's own (reports of providers orderguard has no package for).
SETTLEMENT_FORMATS = formats.table(registry.settlement_formats())
#: Whose reports those are, as people write them (the command's help).
_TITLES = [p.title for p in registry.PLUGINS if p.settlement_formats] + list(formats.OWN_TITLES)


def _day(value: str | None, *, end: bool = False, zone: tzinfo = UTC) -> datetime | None:
    """``value`` (a day or a time) as a moment; a day or a time without a zone is in
    ``zone`` (UTC, or the bill's own zone for a fetched bill's day)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if len(value) == 10 and end:
        parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999_999)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


@click.command(
    help=f"Reconcile provider settlement reports ({', '.join(_TITLES)}, CSV): FILES, or a "
    "wallet's daily bill downloaded with --fetch alipay|wechatpay --date YYYY-MM-DD."
)
@click.argument(
    "files", nargs=-1, required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--fetch",
    default=None,
    type=click.Choice([p.name for p in registry.PLUGINS]),
    help="Download this provider's daily bill (Alipay, WeChat Pay) instead of reading FILES.",
)
@click.option("--date", "bill_date", default=None, help="The bill's day, China time (YYYY-MM-DD).")
@click.option(
    "--account", default=None, help="The configured account to fetch with (default: the main one)."
)
@click.option(
    "--bill-dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Keep the downloaded bill in this directory (default: a temporary one, removed).",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *formats.names(SETTLEMENT_FORMATS), "csv"]),
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML column mapping (generic CSV).",
)
@click.option(
    "--from", "date_from", default=None, help="Start of the report's period (YYYY-MM-DD)."
)
@click.option("--to", "date_to", default=None, help="End of the report's period (YYYY-MM-DD).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="report.html, exceptions .csv or .json",
)
@click.option(
    "--provider", default=None, help="The provider's name in orderguard (default: the format's)."
)
@click.option(
    "--window-days",
    default=3,
    show_default=True,
    type=click.IntRange(0, 60),
    help="Amount matches within this many days.",
)
@click.option(
    "--apply",
    "do_apply",
    is_flag=True,
    help="Record the run, flag orders, hand orphans to the sweep.",
)
@click.option("--locale", default="en", show_default=True, type=click.Choice(LOCALES))
def reconcile(
    files: tuple[Path, ...],
    fetch: str | None,
    bill_date: str | None,
    account: str | None,
    bill_dir: Path | None,
    fmt: str,
    mapping: Path | None,
    date_from: str | None,
    date_to: str | None,
    out: Path | None,
    provider: str | None,
    window_days: int,
    do_apply: bool,
    locale: str,
) -> None:
    """Reconcile provider settlement reports (the help names their formats)."""
    _check_sources(files, fetch, bill_date, account, bill_dir)
    if fmt == "csv" and mapping is None:
        raise click.UsageError("--format csv needs --mapping FILE")
    console = Console(soft_wrap=True)
    try:
        settings = Settings.load()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="og-bill-") as scratch:
        paths = list(files)
        zone: tzinfo = UTC
        if fetch is not None and bill_date is not None:
            into = bill_dir or Path(scratch)
            paths, name = _fetch(settings, fetch, bill_date, account, into, locale)
            # the bill's day, account and format, as a user giving the file would say them;
            # the day is the bill's: China's (a user's own --from/--to are UTC, as for files)
            if date_from is None and date_to is None:
                zone = bill_fetch.BILL_ZONE
            date_from, date_to = date_from or bill_date, date_to or bill_date
            provider = provider or name
            fmt = fetch if fmt == "auto" and fetch in formats.names(SETTLEMENT_FORMATS) else fmt
        options = EngineOptions(
            period_from=_day(date_from, zone=zone),
            period_to=_day(date_to, end=True, zone=zone),
            window_days=window_days,
            provider=provider,
        )
        request = Request(paths, fmt, mapping, options, SETTLEMENT_FORMATS)
        code = _run(settings, request, console, out=out, do_apply=do_apply, locale=locale)
    raise SystemExit(code)


def _fetch(
    settings: Settings, fetch: str, bill_date: str, account: str | None, into: Path, locale: str
) -> tuple[list[Path], str]:
    """Download ``fetch``'s bill of ``bill_date`` into ``into``: its files, the account's name."""
    day = bill_fetch.bill_day(bill_date, today=bill_fetch.today_in_china(), locale=locale)
    plugin, chosen = bill_fetch.choose_account(settings, fetch, account, locale=locale)
    return bill_fetch.download(plugin, chosen, day, into, locale=locale), chosen.name


def _check_sources(
    files: tuple[Path, ...],
    fetch: str | None,
    bill_date: str | None,
    account: str | None,
    bill_dir: Path | None,
) -> None:
    """FILES, or ``--fetch`` with ``--date`` (maybe ``--account``, ``--bill-dir``): one."""
    if fetch is None:
        if bill_date is not None or account is not None or bill_dir is not None:
            raise click.UsageError("--date, --account and --bill-dir go with --fetch PROVIDER")
        if not files:
            raise click.UsageError("give report FILES, or --fetch PROVIDER --date YYYY-MM-DD")
        return
    if files:
        raise click.UsageError("give report FILES or --fetch, not both")
    if bill_date is None:
        raise click.UsageError("--fetch needs --date YYYY-MM-DD (a day over in China)")


def _run(
    settings: Settings,
    request: Request,
    console: Console,
    *,
    out: Path | None,
    do_apply: bool,
    locale: str,
) -> int:
    """Reconcile ``request`` against the orders, print and write the report; the exit code."""

    async def work() -> int:
        storage = await open_storage(settings)
        try:
            with tempfile.TemporaryDirectory(prefix="og-reconcile-") as scratch:
                engine, outcome = await run_reconcile(storage, request, Path(scratch))
                try:
                    print_summary(outcome, console, locale=locale)
                    if out is not None:
                        written = [out]
                        if out.suffix.lower() in (".html", ".htm"):
                            write_html(engine, outcome, out, locale=locale)
                        else:
                            write_exceptions(engine, outcome, out)
                            if out.suffix.lower() != ".json":
                                written.append(summary_path(out))
                        console.print(
                            "wrote " + " and ".join(str(p) for p in written),
                            markup=False,
                            highlight=False,
                        )
                    if do_apply:
                        done = await apply(storage, engine, outcome)
                        if done.new_run:
                            console.print(
                                f"applied run {done.run_id}: {done.recorded} exceptions recorded, "
                                f"{done.flagged} orders flagged, {done.handed_to_sweep} orphan "
                                f"charges handed to the sweep, {done.resolved} earlier "
                                "exceptions resolved"
                            )
                        else:
                            console.print("these files were applied before: nothing changed")
                finally:
                    engine.close()
                return 1 if outcome.errors else 0
        finally:
            await storage.close()

    try:
        return asyncio.run(work())
    except (StorageError, MappingError) as exc:
        raise click.ClickException(str(exc)) from None
