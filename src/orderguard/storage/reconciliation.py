"""Reconciliation in SQL: the orders and attempts it matches, its runs and exceptions (the
``ReconciliationRepository`` of :mod:`orderguard.storage.ports`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from orderguard.storage.database import Connection, must_datetime, to_datetime
from orderguard.storage.ports import (
    ATTEMPT_CSV_COLUMNS,
    ORDER_CSV_COLUMNS,
    ExceptionRecord,
    ExportedAttempt,
    ExportedOrder,
    RunRecord,
)

__all__ = ["ExceptionRecord", "RunRecord", "SqlReconciliationRepository"]

_ORDER = "SELECT id, merchant_reference, state, currency, amount_total, created_at FROM orders"
_ATTEMPT = "SELECT id, order_id, provider, provider_ref, state, updated_at FROM payment_attempts"
#: A period's payments, in ``(updated_at, id)`` order: read from ``payment_attempts_paid``
#: (migration 0018), which holds only the attempts that paid.
PAID_BETWEEN = (
    f"{_ATTEMPT} WHERE state IN ('succeeded', 'refunded') "
    "AND updated_at >= :start AND updated_at <= :end{after}{provider} "
    "ORDER BY updated_at, id LIMIT :limit"
)
#: Attempts named by a report's references (``payment_attempts_provider_ref``).
BY_REFS = f"{_ATTEMPT} WHERE provider_ref IN ({{refs}})"
#: Orders by id (the primary key).
BY_IDS = f"{_ORDER} WHERE id IN ({{refs}})"
#: Orders a report names by id or merchant reference (the primary key and the unique
#: ``merchant_reference``): two index lookups, each order once.
BY_REFERENCES = (
    f"{_ORDER} WHERE id IN ({{refs}}) UNION {_ORDER} WHERE merchant_reference IN ({{refs}})"
)

#: A stored time as ISO text in UTC, whatever the session's time zone and date style.
_ISO_UTC = "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
#: The attempts of a scope, each once: the period's payments (``payment_attempts_paid``),
#: then those the references name (``payment_attempts_provider_ref``) that are not among
#: them (every column tested is NOT NULL: ``NOT`` leaves out exactly the period's).
_PERIOD = (
    "state IN ('succeeded', 'refunded') AND updated_at >= :start AND updated_at <= :end{provider}"
)
#: The references, written once into the statement (``refs``, :data:`SCOPE_CSV`): a constant
#: array of tens of thousands would be estimated element by element each time it is used.
_NAMED = "provider_ref = ANY(CAST((SELECT v FROM refs) AS TEXT[]))"
_SCOPE_ATTEMPTS = (
    f"{_ATTEMPT} WHERE {_PERIOD} UNION ALL {_ATTEMPT} WHERE {_NAMED} AND NOT ({_PERIOD})"
)
#: Paid between the window's ends.
_WINDOW = (
    "state IN ('succeeded', 'refunded') AND updated_at >= :window_from "
    "AND updated_at <= :window_to{provider}"
)
#: ``{rows}`` of the orders in ``{keys}`` (a relation with an ``order_id`` column), each
#: looked up by the key it starts with (``OFFSET 0`` keeps the lookup a lookup: however
#: many keys the planner expects, no table of millions is scanned to join them).
_BY_ORDER = "SELECT r.* FROM ({keys}) k CROSS JOIN LATERAL ({rows} OFFSET 0) r"
#: A scope with a window: the attempts above (``f``), then the window's payments of the
#: orders of those no charge line claims (by ``(order_id, seq)``), but for those already
#: read (the period's and the named ones). The claimed references are hashed once.
SCOPE_WINDOW = (
    f"WITH f AS MATERIALIZED ({_SCOPE_ATTEMPTS}) SELECT * FROM f UNION ALL "
    + _BY_ORDER.format(
        keys="SELECT DISTINCT order_id FROM f WHERE provider_ref IS NULL "
        "OR provider_ref NOT IN (SELECT unnest(CAST(:claimed AS TEXT[])))",
        rows=f"{_ATTEMPT} WHERE order_id = k.order_id AND {_WINDOW} AND NOT ({_PERIOD}) "
        f"AND (provider_ref IS NULL OR NOT {_NAMED})",
    )
)
#: The payments loose charge lines can match: the window's payments of the orders of one
#: of the amounts paid between ``start`` and ``end`` (``payment_attempts_paid``, then each
#: order's amount by its primary key).
CANDIDATES = (
    "WITH c AS MATERIALIZED (SELECT DISTINCT p.order_id FROM payment_attempts p "
    "CROSS JOIN LATERAL (SELECT amount_total FROM orders WHERE id = p.order_id OFFSET 0) o "
    "WHERE p.state IN ('succeeded', 'refunded') "
    "AND p.updated_at >= :start AND p.updated_at <= :end{paid_through} "
    "AND o.amount_total = ANY(CAST(:amounts AS BIGINT[]))) "
    + _BY_ORDER.format(
        keys="SELECT order_id FROM c",
        rows=f"{_ATTEMPT} WHERE order_id = k.order_id AND {_WINDOW}",
    )
)
_REFS_ONLY = f"{_ATTEMPT} WHERE {_NAMED}"
#: A scope's attempts and orders in one statement, each row once, tagged with its file
#: (``a``: the attempts, ``o``: the orders), as the export's CSV files have them: the
#: attempts (read once), then the orders of those attempts and those the order references
#: name, by primary key from their ids. An order reference that is the id of an order
#: already read needs no lookup (a report's metadata usually names the line's own order);
#: one that is no order's id is looked up as a merchant reference (the engine matches by
#: merchant reference only what the ids did not).
SCOPE_CSV = (
    "WITH refs AS MATERIALIZED (SELECT CAST(:refs AS TEXT[]) AS v), "
    "a AS MATERIALIZED ({attempts}), "
    "r AS MATERIALIZED (SELECT unnest(CAST(:order_refs AS TEXT[])) AS ref "
    "EXCEPT SELECT order_id FROM a), "
    "i AS MATERIALIZED (SELECT id FROM orders WHERE id = ANY(ARRAY(SELECT ref FROM r))) "
    "SELECT 'a' AS part, order_id AS c1, provider AS c2, provider_ref AS c3, state AS c4, "
    f"{_ISO_UTC.format('updated_at')} AS c5, NULL AS c6 FROM a "
    "UNION ALL SELECT 'o', id, merchant_reference, state, currency, "
    f"CAST(amount_total AS TEXT), {_ISO_UTC.format('created_at')} FROM ("
    + _BY_ORDER.format(
        keys="SELECT order_id FROM a UNION SELECT id FROM i UNION SELECT id FROM orders "
        "WHERE merchant_reference = ANY(ARRAY(SELECT ref FROM r EXCEPT SELECT id FROM i))",
        rows="SELECT * FROM orders WHERE id = k.order_id",
    )
    + ") o"
)


def in_list(values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``values`` as named parameters for ``IN (...)``: the placeholders and their values."""
    names = {f"v{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{name}" for name in names), names


class SqlReconciliationRepository:
    """Reconciliation runs and their exceptions."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def orders_after(self, after: str, *, limit: int) -> list[ExportedOrder]:
        rows = await self._conn.fetchall(
            f"{_ORDER} WHERE id > :after ORDER BY id LIMIT :limit",
            {"after": after, "limit": limit},
        )
        return [_order(r) for r in rows]

    async def attempts_after(self, after: str, *, limit: int) -> list[ExportedAttempt]:
        rows = await self._conn.fetchall(
            f"{_ATTEMPT} WHERE id > :after ORDER BY id LIMIT :limit",
            {"after": after, "limit": limit},
        )
        return [_attempt(r) for r in rows]

    async def paid_attempts_between(
        self,
        start: datetime,
        end: datetime,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        provider: str | None = None,
    ) -> list[ExportedAttempt]:
        params: dict[str, Any] = {"start": start, "end": end, "limit": limit}
        keyset = ""
        if after is not None:
            keyset = " AND (updated_at > :after_at OR (updated_at = :after_at AND id > :after_id))"
            params.update(after_at=after[0], after_id=after[1])
        through = " AND provider = :provider" if provider else ""
        params["provider"] = provider
        sql = PAID_BETWEEN.format(after=keyset, provider=through)
        return [_attempt(r) for r in await self._conn.fetchall(sql, params)]

    async def attempts_by_refs(self, refs: Sequence[str]) -> list[ExportedAttempt]:
        if not refs:
            return []
        placeholders, params = in_list(refs)
        rows = await self._conn.fetchall(BY_REFS.format(refs=placeholders), params)
        return [_attempt(r) for r in rows]

    async def orders_by_ids(self, ids: Sequence[str]) -> list[ExportedOrder]:
        if not ids:
            return []
        placeholders, params = in_list(ids)
        rows = await self._conn.fetchall(BY_IDS.format(refs=placeholders), params)
        return [_order(r) for r in rows]

    async def orders_by_references(self, refs: Sequence[str]) -> list[ExportedOrder]:
        if not refs:
            return []
        placeholders, params = in_list(refs)
        rows = await self._conn.fetchall(BY_REFERENCES.format(refs=placeholders), params)
        return [_order(r) for r in rows]

    async def copy_scope(
        self,
        orders_csv: Path,
        attempts_csv: Path,
        *,
        paid_from: datetime | None,
        paid_to: datetime | None,
        provider: str | None,
        refs: Sequence[str],
        order_refs: Sequence[str],
        window_from: datetime | None = None,
        window_to: datetime | None = None,
        claimed: Sequence[str] = (),
    ) -> tuple[int, int] | None:
        """Stream a scope's attempts, then their orders and those ``order_refs`` name, to
        two CSV files, one statement in all; ``(orders, attempts)`` written, or ``None``
        where the driver cannot stream (nothing written)."""
        params: dict[str, Any] = {"refs": list(refs), "order_refs": list(order_refs)}
        through = " AND provider = :provider" if provider else ""
        if paid_from is None or paid_to is None:
            attempts = _REFS_ONLY
        elif window_from is None or window_to is None:
            attempts = _SCOPE_ATTEMPTS.format(provider=through)
        else:
            attempts = SCOPE_WINDOW.format(provider=through)
            params.update(window_from=window_from, window_to=window_to, claimed=list(claimed))
        params.update(start=paid_from, end=paid_to, provider=provider)
        return await self._copy(orders_csv, attempts_csv, attempts, params)

    async def copy_candidates(
        self,
        orders_csv: Path,
        attempts_csv: Path,
        *,
        paid_from: datetime,
        paid_to: datetime,
        amounts: Sequence[int],
        window_from: datetime,
        window_to: datetime,
        provider: str | None,
    ) -> tuple[int, int] | None:
        """Stream the payments loose charge lines can match, and their orders, to two CSV
        files, one statement in all, as :meth:`copy_scope` does."""
        params: dict[str, Any] = {
            "start": paid_from,
            "end": paid_to,
            "amounts": list(amounts),
            "window_from": window_from,
            "window_to": window_to,
            "provider": provider,
            "refs": [],
            "order_refs": [],
        }
        attempts = CANDIDATES.format(
            paid_through=" AND p.provider = :provider" if provider else "",
            provider=" AND provider = :provider" if provider else "",
        )
        return await self._copy(orders_csv, attempts_csv, attempts, params)

    async def _copy(
        self, orders_csv: Path, attempts_csv: Path, attempts: str, params: dict[str, Any]
    ) -> tuple[int, int] | None:
        written = await self._conn.copy_csv(
            SCOPE_CSV.format(attempts=attempts),
            params,
            {"a": (attempts_csv, ATTEMPT_CSV_COLUMNS), "o": (orders_csv, ORDER_CSV_COLUMNS)},
        )
        if written is None:
            return None
        return written["o"], written["a"]

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

    async def resolve(self, ids: Sequence[str], *, run_id: str, at: datetime) -> int:
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
        """How many runs were applied."""
        row = await self._conn.fetchone("SELECT COUNT(*) AS n FROM reconciliation_runs")
        return int(row["n"]) if row else 0


def _order(r: dict[str, Any]) -> ExportedOrder:
    return ExportedOrder(
        id=r["id"],
        merchant_reference=r["merchant_reference"],
        state=r["state"],
        currency=r["currency"],
        amount=int(r["amount_total"]),
        created_at=must_datetime(r["created_at"]),
    )


def _attempt(r: dict[str, Any]) -> ExportedAttempt:
    return ExportedAttempt(
        id=r["id"],
        order_id=r["order_id"],
        provider=r["provider"],
        provider_ref=r["provider_ref"],
        state=r["state"],
        updated_at=must_datetime(r["updated_at"]),
    )


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
