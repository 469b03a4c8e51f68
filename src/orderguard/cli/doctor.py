"""``orderguard doctor``: check this deployment; exit 0 (all well), 1 (warnings), 2 (failures)."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack

import click
import orjson

from orderguard.cli.startup import load_settings
from orderguard.config import MODES, Settings
from orderguard.observability.checks import Check, Status, worst
from orderguard.observability.doctor import Doctor, Targets, open_for_doctor
from orderguard.observability.doctor_accounts import Clock
from orderguard.observability.hooks import UntrackedOutbox
from orderguard.observability.wiring import outbox_stats
from orderguard.providers import registry
from orderguard.providers.base import PaymentProvider
from orderguard.storage.unit_of_work import SqlStorage

_MARKS = {Status.PASS: "pass", Status.SKIP: "skip", Status.WARN: "WARN", Status.FAIL: "FAIL"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check the database, schema, providers, webhooks, clocks, worker, outbox and orders;
    print each check with its fix. Exit 0 when all pass, 1 on warnings, 2 on failures."""
    settings = load_settings()
    checks = asyncio.run(run_doctor(settings))
    code = worst(checks)
    if as_json:
        verdict = {0: "pass", 1: "warn", 2: "fail"}[code]
        body = {"status": verdict, "checks": [c.as_dict() for c in checks]}
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        for check in checks:
            click.echo(_line(check))
    _say_refused(checks)
    sys.exit(code)


def _say_refused(checks: list[Check]) -> None:
    """In production, the first refusal also goes to stderr as the one line ``serve`` and
    ``worker`` print (every one is listed above as a failure with its fix)."""
    refusals = [
        (mode, c)
        for c in checks
        for mode in MODES
        if c.name.startswith(f"{mode} ") and c.status is Status.FAIL
    ]
    if refusals:
        mode, first = refusals[0]
        click.echo(f"orderguard: {mode}: {first.detail}: {first.fix}", err=True)


def _line(check: Check) -> str:
    fix = f"  -> {check.fix}" if check.fix and check.status.severity else ""
    return f"[{_MARKS[check.status]}] {check.name}: {check.detail}{fix}"


async def run_doctor(settings: Settings, *, clock: Clock | None = None) -> list[Check]:
    """Every check against the deployment ``settings`` describe (``clock``: this host's,
    held against the wallets' gateways)."""
    async with AsyncExitStack() as stack:
        db, error = await open_for_doctor(settings)
        if db is not None:
            stack.push_async_callback(db.close)
        providers = _providers(settings)
        for provider in providers:
            stack.push_async_callback(provider.aclose)
        storage = SqlStorage(db) if db is not None else None
        doctor = Doctor(
            settings,
            storage=storage,
            db_error=error,
            providers=providers,
            outbox=outbox_stats(storage, settings) if storage is not None else UntrackedOutbox(),
            targets=Targets.from_settings(settings),
            **({"clock": clock} if clock is not None else {}),
        )
        return await doctor.run()
    raise AssertionError("unreachable")  # pragma: no cover


def _providers(settings: Settings) -> list[PaymentProvider]:
    """The configured provider accounts (none when the built-in sandbox is used). An account
    whose keys do not read is left out when its checkup says so (``<name> keys``)."""
    built: list[PaymentProvider] = []
    for plugin, account in registry.configured(settings):
        try:
            built.append(plugin.build(account, 10.0))
        except (ValueError, TypeError):
            if plugin.checkup is None:
                raise
    return built
