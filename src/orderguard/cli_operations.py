"""The CLI's operator actions, which talk to payment providers: ``orderguard sweep`` and
``orderguard orders recheck|refund|cancel``. Each change names its actor on the timeline
(``--actor``, by default the operating-system user), with the cause ``support``.
"""

from __future__ import annotations

import asyncio
import getpass
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import click

from orderguard.bootstrap import Container, open_sql
from orderguard.config import ConfigError, Settings
from orderguard.domain.errors import DomainError
from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.refund_record import MAX_REASON
from orderguard.storage.errors import StorageError

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def run_app(work: Callable[[Container], Awaitable[T]]) -> T:
    """Run ``work`` on the whole application: database and payment providers."""

    async def main() -> T:
        try:
            container = await open_sql(Settings.load())
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from None
        try:
            return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except (StorageError, DomainError) as exc:
        raise click.ClickException(str(exc)) from None


def duration(text: str) -> timedelta:
    """``30s``, ``10m``, ``2h`` or ``1d`` as a time span; raises ``click.BadParameter``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "support"


_ACTOR = click.option(
    "--actor",
    default=_os_user,
    show_default="the operating-system user",
    help="Who is acting; written on the order's timeline.",
)


@click.command()
@click.option("--hours", type=click.IntRange(1, 24 * 90), default=None, help="Window to sweep.")
def sweep(hours: int | None) -> None:
    """Find orphan and duplicate charges at the providers and resolve them now."""

    async def work(c: Container) -> str:
        window = timedelta(hours=hours or c.settings.sweep_window_hours)
        report = await c.sweeper.sweep_last(window)
        return ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in vars(report).items())

    click.echo(run_app(work))


@click.command("recheck")
@click.argument("order_id")
@_ACTOR
def recheck(order_id: str, actor: str) -> None:
    """Ask the provider now what happened to the order's open payment attempts."""
    _show(run_app(lambda c: c.recheck.order(order_id, cause=Cause.SUPPORT, actor=actor)))


@click.command("refund")
@click.argument("order_id")
@click.option(
    "--amount",
    type=click.IntRange(min=1),
    default=None,
    help="Minor units (cents); default: all that is left to refund.",
)
@click.option(
    "--reason",
    required=True,
    help=f"Why (1-{MAX_REASON} characters); kept on the refund and the order's timeline.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_ACTOR
def refund(order_id: str, amount: int | None, reason: str, yes: bool, actor: str) -> None:
    """Refund a paid order at its provider, in full or in part, after a confirmation.

    Each run is one new refund (its own provider idempotency key), unless a refund of the
    same amount by the same operator got no answer from the provider: that one is sent
    again with its own key instead, so repeating a run that failed never refunds twice.
    The command answers with the order's state, how much was refunded and how much is left.
    """
    reason = _checked_reason(reason)
    what = "all that is left" if amount is None else f"{amount} minor units"
    if not yes:
        click.confirm(f"Refund {what} of order {order_id} ({reason})?", abort=True)
    answer = run_app(
        lambda c: c.operations.request_refund(
            order_id, amount=amount, reason=reason, actor=actor, cause=Cause.SUPPORT
        )
    )
    made = answer.refund
    _show(answer.order)
    click.echo(
        f"refund {made.id}  {made.amount} {made.currency}  {made.state}"
        f"{f' ({made.failure_reason})' if made.failure_reason else ''}  "
        f"refunded {answer.order.amount_refunded}, left {answer.order.amount_refundable}"
    )


def _checked_reason(text: str) -> str:
    reason = text.strip()
    if not 1 <= len(reason) <= MAX_REASON or any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        raise click.BadParameter(
            f"give 1 to {MAX_REASON} printable characters", param_hint="--reason"
        )
    return reason


@click.command("cancel")
@click.argument("order_id")
@_ACTOR
def cancel(order_id: str, actor: str) -> None:
    """Cancel an order that is not paid and has no payment whose outcome is unknown."""
    _show(run_app(lambda c: c.operations.cancel_order(order_id, actor=actor, cause=Cause.SUPPORT)))


def _show(order: Order) -> None:
    click.echo(f"{order.id}  {order.state}  {order.total.format()}{flagged(order)}")


def flagged(order: Order) -> str:
    """The order's open review flags, for a line of output ("" when it has none)."""
    texts = [flag.text for flag in order.open_flags]
    return f"  FLAGGED: {' | '.join(texts)}" if texts else ""
