"""Reconciliation in SQL: exporting orders for the engine, recording runs and exceptions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orderguard.storage.database import (
    Connection,
    Database,
    must_datetime,
    to_datetime,
    transaction,
)

#: Rows read per round trip while exporting (memory stays bounded by this).
EXPORT_PAGE = 20_000


async def export_orders(
    db: Database, orders_csv: Path, attempts_csv: Path, *, page: int = EXPORT_PAGE
) -> int:
    """Stream every order and payment attempt to two CSV files; return the orders written."""
    written = await _export(
        db,
        orders_csv,
        "SELECT id, merchant_reference, state, currency, amount_total, created_at FROM orders "
        "WHERE id > :after ORDER BY id LIMIT :limit",
        ["order_id", "merchant_reference", "state", "currency", "amount", "created_at"],
        page,
    )
    await _export(
        db,
        attempts_csv,
        "SELECT id, order_id, provider, provider_ref, state, updated_at FROM payment_attempts "
        "WHERE id > :after ORDER BY id LIMIT :limit",
        ["order_id", "provider", "provider_ref", "state", "updated_at"],
        page,
        skip_first=True,
    )
    return written


async def _export(
    db: Database, path: Path, query: str, header: list[str], page: int, *, skip_first: bool = False
) -> int:
    count, after = 0, ""
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(header)
        while True:
            async with transaction(db, write=False) as conn:
                rows = await conn.fetchall(query, {"after": after, "limit": page})
            if not rows:
                return count
            for row in rows:
                values = list(row.values())
                writer.writerow([_text(v) for v in (values[1:] if skip_first else values)])
            after = str(rows[-1]["id"])
            count += len(rows)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """An applied reconciliation run."""

    id: str
    digest: str
    files: str
    provider: str
    period_from: datetime | None
    period_to: datetime | None
    summary: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    """One recorded exception."""

    id: str
    run_id: str
    dedupe_key: str
    category: str
    order_id: str | None
    provider_ref: str | None
    amount: int | None
    currency: str | None
    expected_amount: int | None
    expected_currency: str | None
    file: str | None
    line: int | None
    recorded_at: datetime
    #: When a later run explained it, and which run (both ``None`` while it is open).
    resolved_at: datetime | None = None
    resolved_by_run: str | None = None


class SqlReconciliationRepository:
    """Reconciliation runs and their exceptions."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record_run(self, run: RunRecord) -> bool:
        """Store ``run``; ``False`` when a run of the same files was applied before."""
        row = await self._conn.fetchone(
            "INSERT INTO reconciliation_runs (id, digest, files, provider, period_from, "
            "period_to, summary, applied_at) VALUES (:id, :digest, :files, :provider, "
            ":period_from, :period_to, :summary, :applied_at) "
            "ON CONFLICT (digest) DO NOTHING RETURNING id",
            vars_of(run),
        )
        return row is not None

    async def record_exception(self, record: ExceptionRecord) -> bool:
        """Store ``record``; ``False`` when the same exception was recorded before."""
        row = await self._conn.fetchone(
            "INSERT INTO reconciliation_exceptions (id, run_id, dedupe_key, category, "
            "order_id, provider_ref, amount, currency, expected_amount, expected_currency, "
            "file, line, recorded_at) VALUES (:id, :run_id, :dedupe_key, :category, "
            ":order_id, :provider_ref, :amount, :currency, :expected_amount, "
            ":expected_currency, :file, :line, :recorded_at) "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            vars_of(record),
        )
        return row is not None

    async def latest_exceptions(
        self, *, limit: int, category: str | None = None, open_only: bool = False
    ) -> list[ExceptionRecord]:
        """The newest exceptions (only the open ones with ``open_only``), newest first."""
        wheres = ["category = :category"] if category else []
        if open_only:
            wheres.append("resolved_at IS NULL")
        where = f" WHERE {' AND '.join(wheres)}" if wheres else ""
        rows = await self._conn.fetchall(
            f"SELECT * FROM reconciliation_exceptions{where} "
            "ORDER BY recorded_at DESC, id DESC LIMIT :limit",
            {"limit": limit, "category": category},
        )
        return [_exception(r) for r in rows]

    async def open_exceptions(self, *, provider: str, other_than: str) -> list[ExceptionRecord]:
        """The open exceptions runs about ``provider`` recorded, but for run ``other_than``."""
        rows = await self._conn.fetchall(
            "SELECT e.* FROM reconciliation_exceptions e "
            "JOIN reconciliation_runs r ON r.id = e.run_id "
            "WHERE e.resolved_at IS NULL AND r.provider = :provider AND e.run_id <> :run "
            "ORDER BY e.id",
            {"provider": provider, "run": other_than},
        )
        return [_exception(r) for r in rows]

    async def resolve(self, ids: list[str], *, run_id: str, at: datetime) -> int:
        """Close the open exceptions ``ids``, explained by run ``run_id``; how many closed."""
        closed = 0
        for exception_id in ids:
            row = await self._conn.fetchone(
                "UPDATE reconciliation_exceptions SET resolved_at = :at, resolved_by_run = :run "
                "WHERE id = :id AND resolved_at IS NULL RETURNING id",
                {"at": at, "run": run_id, "id": exception_id},
            )
            closed += row is not None
        return closed

    async def counts_by_category(self, *, open_only: bool = False) -> dict[str, int]:
        """Exceptions per category: every one recorded, or only the open ones."""
        where = " WHERE resolved_at IS NULL" if open_only else ""
        rows = await self._conn.fetchall(
            f"SELECT category, COUNT(*) AS n FROM reconciliation_exceptions{where} "
            "GROUP BY category"
        )
        return {str(r["category"]): int(r["n"]) for r in rows}

    async def providers_of(self, run_ids: set[str]) -> dict[str, str]:
        """The provider each of ``run_ids`` reconciled."""
        if not run_ids:
            return {}
        names = {f"r{i}": run for i, run in enumerate(sorted(run_ids))}
        rows = await self._conn.fetchall(
            "SELECT id, provider FROM reconciliation_runs WHERE id IN "
            f"({', '.join(':' + name for name in names)})",
            names,
        )
        return {str(r["id"]): str(r["provider"]) for r in rows}

    async def runs(self) -> int:
        row = await self._conn.fetchone("SELECT COUNT(*) AS n FROM reconciliation_runs")
        return int(row["n"]) if row else 0


def _exception(row: dict[str, Any]) -> ExceptionRecord:
    return ExceptionRecord(
        **{
            **row,
            "recorded_at": must_datetime(row["recorded_at"]),
            "resolved_at": to_datetime(row["resolved_at"]),
        }
    )


def vars_of(record: RunRecord | ExceptionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}
