"""``orderguard audit customers``: stored shopper data that today's rules refuse."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import click
import orjson

from orderguard.cli.common import duration
from orderguard.config import ConfigError, Settings
from orderguard.services.audit import AuditReport, audit_customers
from orderguard.storage.connect import connect
from orderguard.storage.errors import StorageError
from orderguard.storage.unit_of_work import SqlStorage


@click.group()
def audit() -> None:
    """Audit stored data."""


@audit.command("customers")
@click.option("--since", help="Only orders placed since: a date (2026-01-31) or a span (7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--ids", default=20, show_default=True, help="Order ids listed per problem.")
def customers(since: str | None, as_json: bool, ids: int) -> None:
    """Find orders whose shopper data is invalid or incomplete (email, phone, address,
    country); exit 1 when any are found, so scripts can act on it."""
    try:
        settings = Settings.load()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    start = _since(since) if since else None
    try:
        report = asyncio.run(_audit(settings.database_url, start))
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_json(report) if as_json else _text(report, ids))
    sys.exit(1 if report.findings else 0)


async def _audit(url: str, since: datetime | None) -> AuditReport:
    # the database as it is: no migration, one connection (the scan reads a page at a time)
    storage = SqlStorage(await connect(url, pool_size=1))
    try:
        return await audit_customers(storage, since=since)
    finally:
        await storage.close()


def _since(text: str) -> datetime:
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - duration(text)
    return day if day.tzinfo else day.replace(tzinfo=UTC)


def _text(report: AuditReport, ids: int) -> str:
    lines = [
        f"scanned {report.scanned} orders: {report.orders_with_problems} with invalid or "
        "incomplete shopper data"
    ]
    for problem, found in sorted(report.findings.items()):
        shown = ", ".join(f.order_id for f in found[:ids])
        more = f" (+{len(found) - ids} more)" if len(found) > ids else ""
        lines.append(f"  {problem}: {len(found)}  {shown}{more}")
    return "\n".join(lines)


def _json(report: AuditReport) -> str:
    body = {
        "scanned": report.scanned,
        "orders_with_problems": report.orders_with_problems,
        "problems": {
            problem: {
                "count": len(found),
                "orders": [{"order_id": f.order_id, "reason": f.reason} for f in found],
            }
            for problem, found in sorted(report.findings.items())
        },
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
