"""``orderguard demo`` and ``orderguard sandbox-provider``: the proof run and the
sandbox payment provider it (or a developer) starts."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from orderguard.config import PLANTED_DEFECTS
from orderguard.providers import labs


@click.command()
@click.option("--orders", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--seed",
    default="42",
    show_default=True,
    help="The shoppers' and the faults' dice: a number to replay a run, or 'random'.",
)
@click.option(
    "--faults",
    default="storm",
    show_default=True,
    help="The sandbox's fault profile: none, flaky, storm, or a TOML file.",
)
@click.option("--concurrency", default=96, show_default=True, type=click.IntRange(1, 500))
@click.option("--database-url", default=None, help="Default: a fresh SQLite file.")
@click.option("--json", "json_out", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--settle-timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds to wait for every order to be resolved after the last checkout.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the databases and logs in this folder.",
)
@click.option("--plant-defect", default=None, hidden=True, type=click.Choice(PLANTED_DEFECTS))
@click.option(
    "--provider",
    default=labs.lab().provider,
    show_default=True,
    type=click.Choice([*labs.names(), "all"]),
    help="Whose sandbox the shoppers pay at: card shoppers at the card sandbox's, wallet shoppers "
    "(scan and pay, abandon, pay and close the tab, pay from two devices) at Alipay's or "
    "WeChat Pay's; all: the three sandboxes behind one server, the shoppers spread over "
    "them. Each provider's ledger is checked on its own.",
)
@click.option(
    "--wallet-faults",
    default=None,
    help="The wallets' sandboxes' fault profile (none, flaky, storm, or a TOML file of "
    "their settings); default: the --faults profile (a file of settings every sandbox knows).",
)
@click.option(
    "--action-expiry",
    default=10.0,
    show_default=True,
    type=click.FloatRange(2, 3600),
    help="Seconds a payment waits for the shopper (3-D Secure, a wallet's cashier) before "
    "it is closed at the provider and the order cancelled.",
)
@click.option(
    "--refund-share",
    default=0.08,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the checkouts that can end paid whose order the back office then refunds "
    "(a part, then the rest).",
)
def demo(
    orders: int,
    seed: str,
    faults: str,
    concurrency: int,
    database_url: str | None,
    json_out: bool,
    settle_timeout: float,
    keep: Path | None,
    plant_defect: str | None,
    refund_share: float,
    provider: str,
    wallet_faults: str | None,
    action_expiry: float,
) -> None:
    """Shoppers, a storm of provider faults, and the proof that no order was lost.

    Starts the server (with its worker) on a fresh SQLite file and a sandbox provider with
    the storm profile, places orders over HTTP as real shoppers do, waits until every order
    is resolved, and checks the invariants against the database and the provider's ledger.
    Exit code 0 if and only if every invariant holds.
    """
    from orderguard.demo.options import DemoOptions
    from orderguard.demo.run import run_demo
    from orderguard.demo.wallet_run import run_lanes

    if seed != "random" and not seed.isdigit():
        raise click.BadParameter("a whole number or 'random'", param_hint="--seed")
    options = DemoOptions(
        orders=orders,
        seed=None if seed == "random" else int(seed),
        faults=faults,
        concurrency=concurrency,
        database_url=database_url,
        json_out=json_out,
        settle_timeout_s=settle_timeout,
        planted_defect=plant_defect,
        keep=keep,
        refund_share=refund_share,
        provider=provider,
        wallet_faults=wallet_faults,
        action_expiry_s=action_expiry,
    )
    stop_on_sigterm()
    sys.exit(asyncio.run(run_demo(options, lanes=run_lanes)))


def stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a service manager, a CI job's timeout) stops the demo as Ctrl-C
    does: it unwinds, so the sandbox and the API it started (sessions of their own, which a
    signal to the demo alone does not reach) are stopped, not left running."""

    def unwind(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)


@click.command(
    "sandbox-provider",
    help="Run a provider-compatible sandbox (the payment provider's API, test keys only).",
)
@click.option(
    "--provider",
    type=click.Choice(labs.names()),
    default=labs.lab().provider,
    show_default=True,
    help="Whose API the sandbox speaks.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the settings that point orderguard at this sandbox (making its keys at "
    "first start), and exit.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option(
    "--faults",
    default="none",
    show_default=True,
    help="A fault profile (none, flaky, storm) or the path of a TOML profile; every "
    "provider's sandbox has these names.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seeds every fault stream: the same seed gives the same faults.",
)
@click.option(
    "--db",
    "db_path",
    default="./sandbox-provider.db",
    show_default=True,
    help="The sandbox's own ledger (SQLite).",
)
@click.option("--webhook-url", default=None, help="Where to send signed webhooks.")
@click.option(
    "--webhook-secret",
    default=None,
    help="What webhooks are signed with; give orderguard the same one in "
    f"{labs.sandbox_secret_variable()}. Default: a fresh random secret, printed at start.",
)
def sandbox_provider(
    provider: str,
    print_config: bool,
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> None:
    from orderguard.bootstrap import sandbox_webhook_secret

    if webhook_secret is None:
        webhook_secret = sandbox_webhook_secret()
        if not print_config and labs.named(provider).signs_with_secret:
            click.echo(f"sandbox-provider: webhooks are signed with {webhook_secret}", err=True)
    if print_config:
        click.echo(labs.sandbox_config(provider, host, port, db_path, webhook_secret))
        return
    try:
        labs.named(provider).load_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    labs.serve_sandbox(
        host, port, faults, seed, db_path, webhook_url, webhook_secret, provider=provider
    )
