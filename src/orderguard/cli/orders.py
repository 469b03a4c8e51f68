"""``orderguard orders list|show``: find and inspect orders (``recheck``, ``refund`` and
``cancel`` join this group from :mod:`orderguard.cli.operations`, imported when they run)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from orderguard.cli import common
from orderguard.cli.lazy import LazyGroup
from orderguard.domain.errors import OrderNotFound
from orderguard.domain.money import Money
from orderguard.domain.states import OrderState
from orderguard.services import queries
from orderguard.storage.ports import OrderQuery


@click.group(
    cls=LazyGroup,
    lazy={name: f"orderguard.cli.operations:{name}" for name in ("recheck", "refund", "cancel")},
)
def orders() -> None:
    """Find and inspect orders."""


@orders.command("list")
@click.option("--state", type=click.Choice([s.value for s in OrderState]))
@click.option(
    "--stuck", is_flag=True, help="Only stuck orders: payments waiting on the provider, unchanged."
)
@click.option("--older-than", default="30m", show_default=True, help="Unchanged for how long.")
@click.option("--flagged", is_flag=True, help="Only orders in the review queue.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def orders_list(state: str | None, stuck: bool, older_than: str, flagged: bool, limit: int) -> None:
    """List orders, newest first."""
    since = datetime.now(UTC) - common.duration(older_than) if stuck else None
    query = OrderQuery(
        limit=limit,
        state=OrderState(state) if state else None,
        flagged=flagged,
        stuck_since=since,
    )
    for order in common.run(lambda s: queries.list_orders(s, query)):
        ref = order.merchant_reference or "-"
        flag = common.flagged(order)
        click.echo(
            f"{order.id}  {order.created_at:%Y-%m-%d %H:%M:%S}  {order.state:<16} "
            f"{order.total.format():>14}  {ref}{flag}"
        )


@orders.command("show")
@click.argument("order_id")
def orders_show(order_id: str) -> None:
    """Show one order with its payment attempts, refunds and timeline."""
    try:
        detail = common.run(lambda s: queries.order_detail(s, order_id))
    except OrderNotFound as exc:
        raise click.ClickException(str(exc)) from None
    order = detail.order
    click.echo(f"{order.id}  {order.state}  {order.total.format()}")
    for line in order.lines:
        click.echo(f"  {line.quantity} x {line.sku} {line.name}  {line.unit_amount}")
    _section(
        "payments:",
        [
            f"#{a.seq} {a.provider} {a.method}  {a.state}  {_money(a.amount, a.currency)}  "
            f"{_reference(a.provider_ref)}"
            + (f"  declined: {a.decline_code}" if a.decline_code else "")
            for a in order.attempts
        ],
    )
    _section(
        "refunds:",
        [
            f"{r.id}  {r.state}  {_money(r.amount, r.currency)}  {_reference(r.provider_ref)}  "
            f"by {r.requester}: {r.reason}"
            + (f"  failed: {r.failure_reason}" if r.failure_reason else "")
            for r in order.refunds
        ],
    )
    click.echo("timeline:")
    for e in detail.timeline:
        source = e.from_state or "-"
        click.echo(f"  {e.at:%Y-%m-%d %H:%M:%S}  {source} -> {e.to_state}  [{e.cause}] {e.note}")


def _section(title: str, lines: list[str]) -> None:
    """``title`` and its indented ``lines``; nothing when there are none."""
    if lines:
        click.echo(title)
    for line in lines:
        click.echo(f"  {line}")


def _money(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def _reference(provider_ref: str | None) -> str:
    return provider_ref or "(no provider reference)"
