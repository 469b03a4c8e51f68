"""The orders and payment attempts reconciliation matches, streamed to two CSV files page by
page (each page its own read-only unit of work, so memory stays bounded by the page).

A run reads only its :class:`~.outcome.Scope` (:func:`export_scope`): the payments of the
report's period and what the report's lines name, by index, whatever the table's size;
on PostgreSQL in two ``COPY`` statements side by side in one snapshot, written straight to
the files, and another one only for the payments a line that names nothing can be matched
to by amount (:func:`export_candidates`).
:func:`export_orders` (every order) stays for a full export.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from orderguard.reconcile.outcome import Candidates, Scope
from orderguard.storage.ports import (
    ATTEMPT_CSV_COLUMNS,
    ORDER_CSV_COLUMNS,
    ExportedAttempt,
    ExportedOrder,
    UnitOfWorkFactory,
)

R = TypeVar("R", ExportedOrder, ExportedAttempt)

#: Rows read per round trip while exporting.
EXPORT_PAGE = 20_000

#: References looked up per round trip (an ``IN`` list: SQLite takes at most 32,766
#: parameters, and a short list keeps each lookup one index probe per value).
LOOKUP_BATCH = 500

#: The attempt states that mean the provider took the money (the engine's paid attempts).
PAID = frozenset({"succeeded", "refunded"})

#: The files' columns (storage writes the same when it streams them).
ORDER_COLUMNS = list(ORDER_CSV_COLUMNS)
ATTEMPT_COLUMNS = list(ATTEMPT_CSV_COLUMNS)


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


@dataclass(frozen=True)
class Exported:
    """How many rows a scoped export read from storage and wrote, and whether they hold
    every payment amount matching can use (else :func:`export_candidates` reads those a
    run's loose lines need)."""

    orders: int
    attempts: int
    complete: bool = True


async def export_scope(
    storage: UnitOfWorkFactory,
    orders_csv: Path,
    attempts_csv: Path,
    scope: Scope,
    *,
    page: int = EXPORT_PAGE,
    batch: int = LOOKUP_BATCH,
) -> Exported:
    """Stream the orders and attempts of ``scope`` to two CSV files, each row once: the
    period's payments and the attempts the references name (with, where storage streams,
    the unclaimed orders' other payments of the window), then the orders of every attempt
    written and those the order references name. Where storage streams them (PostgreSQL:
    two ``COPY`` statements side by side, whatever the scope's size), straight to the
    files, as ``scope`` says; else every payment of the window page by page (a complete
    scope), then the rest in batches."""
    async with storage.reader() as uow:
        copied = await uow.reconciliations.copy_scope(
            orders_csv,
            attempts_csv,
            paid_from=scope.paid_from,
            paid_to=scope.paid_to,
            provider=scope.provider,
            lines=scope.lines,
            window_from=scope.window_from,
            window_to=scope.window_to,
        )
    if copied is not None:
        return Exported(orders=copied[0], attempts=copied[1], complete=scope.complete)
    if not scope.complete:  # the window's payments, all of them: nothing is left to ask
        scope = replace(scope, paid_from=scope.window_from, paid_to=scope.window_to)
    attempt_ids: set[str] = set()
    order_ids: set[str] = set()
    with attempts_csv.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(ATTEMPT_COLUMNS)

        def write_attempts(rows: Sequence[ExportedAttempt]) -> None:
            for row in rows:
                if row.id not in attempt_ids:
                    attempt_ids.add(row.id)
                    order_ids.add(row.order_id)
                    writer.writerow([_text(v) for v in _attempt_cells(row)])

        async for rows in _period_payments(storage, scope, page):
            write_attempts(rows)
        for chunk in _chunks(sorted(scope.refs), batch):
            async with storage.reader() as uow:
                write_attempts(await uow.reconciliations.attempts_by_refs(chunk))
    written: set[str] = set()
    with orders_csv.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(ORDER_COLUMNS)

        def write_orders(rows: Sequence[ExportedOrder]) -> None:
            for row in rows:
                if row.id not in written:
                    written.add(row.id)
                    writer.writerow([_text(v) for v in _order_cells(row)])

        for chunk in _chunks(sorted(order_ids), batch):
            async with storage.reader() as uow:
                write_orders(await uow.reconciliations.orders_by_ids(chunk))
        for chunk in _chunks(sorted(scope.order_refs), batch):
            async with storage.reader() as uow:
                write_orders(await uow.reconciliations.orders_by_references(chunk))
    return Exported(orders=len(written), attempts=len(attempt_ids))


async def export_candidates(
    storage: UnitOfWorkFactory, orders_csv: Path, attempts_csv: Path, wanted: Candidates
) -> Exported:
    """Stream the payments ``wanted`` names (:meth:`~.engine.Engine.candidates`) and their
    orders to two CSV files, after an incomplete :func:`export_scope` (storage that
    streams: one ``COPY`` statement)."""
    async with storage.reader() as uow:
        copied = await uow.reconciliations.copy_candidates(
            orders_csv,
            attempts_csv,
            paid_from=wanted.paid_from,
            paid_to=wanted.paid_to,
            amounts=sorted(wanted.amounts),
            window_from=wanted.window_from,
            window_to=wanted.window_to,
            provider=wanted.provider,
        )
    if copied is None:
        raise RuntimeError("an incomplete scope was read from storage that does not stream")
    return Exported(orders=copied[0], attempts=copied[1])


async def _period_payments(
    storage: UnitOfWorkFactory, scope: Scope, page: int
) -> AsyncIterator[Sequence[ExportedAttempt]]:
    """The scope's paid attempts, a page at a time (none without a period)."""
    if scope.paid_from is None or scope.paid_to is None:
        return
    after: tuple[datetime, str] | None = None
    while True:
        async with storage.reader() as uow:
            rows = await uow.reconciliations.paid_attempts_between(
                scope.paid_from, scope.paid_to, after=after, limit=page, provider=scope.provider
            )
        if not rows:
            return
        yield rows
        after = (rows[-1].updated_at, rows[-1].id)


async def paid_refs(
    storage: UnitOfWorkFactory, refs: set[str], *, batch: int = LOOKUP_BATCH
) -> set[str]:
    """Those of ``refs`` an attempt now has as a payment (``succeeded`` or ``refunded``),
    looked up by index: an earlier orphan charge whose order the sweep has since found."""
    paid: set[str] = set()
    for chunk in _chunks(sorted(refs), batch):
        async with storage.reader() as uow:
            found = await uow.reconciliations.attempts_by_refs(chunk)
        paid.update(a.provider_ref for a in found if a.provider_ref and a.state in PAID)
    return paid


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


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
