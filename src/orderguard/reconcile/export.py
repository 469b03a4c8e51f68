"""The orders and payment attempts reconciliation matches, streamed to two CSV files page by
page (each page its own read-only unit of work, so memory stays bounded by the page)."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from orderguard.storage.ports import ExportedAttempt, ExportedOrder, UnitOfWorkFactory

R = TypeVar("R", ExportedOrder, ExportedAttempt)

#: Rows read per round trip while exporting.
EXPORT_PAGE = 20_000

ORDER_COLUMNS = ["order_id", "merchant_reference", "state", "currency", "amount", "created_at"]
ATTEMPT_COLUMNS = ["order_id", "provider", "provider_ref", "state", "updated_at"]


async def export_orders(
    storage: UnitOfWorkFactory,
    orders_csv: Path,
    attempts_csv: Path,
    *,
    page: int = EXPORT_PAGE,
) -> int:
    """Stream every order and payment attempt to two CSV files; return the orders written."""

    async def orders(after: str) -> Sequence[ExportedOrder]:
        async with storage.reader() as uow:
            return await uow.reconciliations.orders_after(after, limit=page)

    async def attempts(after: str) -> Sequence[ExportedAttempt]:
        async with storage.reader() as uow:
            return await uow.reconciliations.attempts_after(after, limit=page)

    written = await _export(orders_csv, ORDER_COLUMNS, orders, _order_cells)
    await _export(attempts_csv, ATTEMPT_COLUMNS, attempts, _attempt_cells)
    return written


async def _export(
    path: Path,
    header: list[str],
    pages: Callable[[str], Awaitable[Sequence[R]]],
    cells: Callable[[R], list[object]],
) -> int:
    count, after = 0, ""
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(header)
        while rows := await pages(after):
            writer.writerows([_text(v) for v in cells(row)] for row in rows)
            after = rows[-1].id
            count += len(rows)
    return count


def _order_cells(o: ExportedOrder) -> list[object]:
    return [o.id, o.merchant_reference, o.state, o.currency, o.amount, o.created_at]


def _attempt_cells(a: ExportedAttempt) -> list[object]:
    return [a.order_id, a.provider, a.provider_ref, a.state, a.updated_at]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
