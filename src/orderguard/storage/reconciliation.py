"""Reconciliation in SQL: the orders and attempts it matches, its runs and exceptions (the
``ReconciliationRepository`` of :mod:`orderguard.storage.ports`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from orderguard.storage.database import Connection, Streamed, must_datetime, to_datetime
from orderguard.storage.ports import (
    ATTEMPT_CSV_COLUMNS,
    ORDER_CSV_COLUMNS,
    ExceptionRecord,
    ExportedAttempt,
    ExportedOrder,
    LineRefs,
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
#: The payments of a scope's period (``payment_attempts_paid``); ``false`` without one.
_PERIOD = (
    "state IN ('succeeded', 'refunded') AND updated_at >= :start AND updated_at <= :end{provider}"
)
#: Paid between the window's ends.
_WINDOW = (
    "state IN ('succeeded', 'refunded') AND updated_at >= :window_from "
    "AND updated_at <= :window_to{provider}"
)
#: The settings a scope's statement reads its lines from (:class:`LineRefs`: long JSON
#: arrays, set by bound parameters: see :class:`~.database.Streamed`), by the name of each.
LINE_SETTINGS = {
    "refs": "orderguard.line_refs",
    "order_refs": "orderguard.line_order_refs",
    "charges": "orderguard.line_charges",
}
#: ``{rows}`` of the orders in ``{keys}`` (a relation with an ``order_id`` column), each
#: looked up by the key it starts with (``OFFSET 0`` keeps the lookup a lookup: however
#: many keys the planner expects, no table of millions is scanned to join them).
_BY_ORDER = "SELECT r.* FROM ({keys}) k CROSS JOIN LATERAL ({rows} OFFSET 0) r"
#: An array of text, read from a one-row relation (``v``).
_ANY = "ANY(CAST((SELECT v FROM {0}) AS TEXT[]))"
#: A scope's attempts, as common table expressions: ``l``, the lines' keys; ``p``, the
#: period's payments; ``n``, the attempts the lines' references (``refs``) name that are not
#: among them; ``o``, the order references of the lines whose reference names no attempt
#: (or that have none), and ``w``, the attempts those name as their own reference (a
#: wallet's ``out_trade_no``) that were not read already (every column tested is NOT NULL:
#: ``NOT`` leaves out exactly the period's). A list is looked up whole (``= ANY`` of an
#: array: the database sorts it, drops repeats and probes the index once per value); a
#: ``NOT IN`` list is hashed when first needed (not at all when ``o`` is empty).
_SCOPE = (
    "l AS MATERIALIZED (SELECT * FROM ROWS FROM ("
    + ", ".join(
        f"json_array_elements_text(CAST(current_setting('{name}') AS JSON))"
        for name in LINE_SETTINGS.values()
    )
    + ") AS l (ref, order_ref, charge)), "
    "refs AS MATERIALIZED (SELECT ARRAY(SELECT ref FROM l WHERE ref IS NOT NULL) AS v), "
    f"p AS MATERIALIZED ({_ATTEMPT} WHERE {{period}}), "
    f"n AS MATERIALIZED ({_ATTEMPT} WHERE provider_ref = {_ANY.format('refs')} "
    "AND NOT ({period})), "
    "o AS MATERIALIZED (SELECT DISTINCT order_ref AS ref FROM l WHERE order_ref IS NOT NULL "
    "AND (ref IS NULL OR ref NOT IN (SELECT provider_ref FROM p WHERE provider_ref IS NOT NULL "
    "UNION ALL SELECT provider_ref FROM n))), "
    "wallet AS MATERIALIZED (SELECT ARRAY(SELECT ref FROM o WHERE ref NOT IN "
    "(SELECT ref FROM l WHERE ref IS NOT NULL)) AS v), "
    f"w AS MATERIALIZED ({_ATTEMPT} WHERE provider_ref = {_ANY.format('wallet')} "
    "AND NOT ({period})), "
    "f AS MATERIALIZED (SELECT * FROM p UNION ALL SELECT * FROM n UNION ALL SELECT * FROM w)"
)
#: The attempts of a scope not among the period's (``b``): the named ones (``n``, ``w``)
#: and, with a window, the window's payments of the orders of the attempts above whose
#: reference no usable charge line claims (by ``(order_id, seq)``), but for those already
#: read (the period's and the named ones).
_SCOPE_REST = "b AS MATERIALIZED (SELECT * FROM n UNION ALL SELECT * FROM w{window})"
_SCOPE_WINDOW = " UNION ALL " + _BY_ORDER.format(
    keys="SELECT DISTINCT order_id FROM f WHERE provider_ref IS NULL OR provider_ref "
    "NOT IN (SELECT ref FROM l WHERE charge = 'true' AND ref IS NOT NULL)",
    rows=f"{_ATTEMPT} WHERE order_id = k.order_id AND {_WINDOW} AND NOT ({{period}}) "
    f"AND (provider_ref IS NULL OR NOT (provider_ref = {_ANY.format('refs')} "
    f"OR provider_ref = {_ANY.format('wallet')}))",
)
#: The order references to look up as an order's id or merchant reference (``r``): those of
#: ``o`` that are not the id of an order already read (a report's metadata usually names the
#: line's own order); ``i``, those that are an order's id.
_ORDER_REFS = (
    "r AS MATERIALIZED (SELECT ref FROM o WHERE ref NOT IN "
    "(SELECT order_id FROM p UNION ALL SELECT order_id FROM b)), "
    "i AS MATERIALIZED (SELECT id FROM orders WHERE id = ANY(ARRAY(SELECT ref FROM r)))"
)
#: The orders of ``b``'s attempts and those the order references name, but for those of the
#: period's payments (the first statement writes them; hashed only when there is another).
_SCOPE_REST_ORDERS = (
    "SELECT order_id FROM (SELECT order_id FROM b UNION SELECT id FROM i UNION SELECT id "
    "FROM orders WHERE merchant_reference = ANY(ARRAY(SELECT ref FROM r EXCEPT "
    "SELECT id FROM i))) x WHERE order_id NOT IN (SELECT order_id FROM p)"
)
#: The payments loose charge lines can match: the window's payments of the orders of one
#: of the amounts paid between ``start`` and ``end`` (``payment_attempts_paid``, then each
#: order's amount by its primary key).
CANDIDATES = (
    "c AS MATERIALIZED (SELECT DISTINCT p.order_id FROM payment_attempts p "
    "CROSS JOIN LATERAL (SELECT amount_total FROM orders WHERE id = p.order_id OFFSET 0) o "
    "WHERE p.state IN ('succeeded', 'refunded') "
    "AND p.updated_at >= :start AND p.updated_at <= :end{paid_through} "
    "AND o.amount_total = ANY(CAST(:amounts AS BIGINT[]))), "
    "a AS MATERIALIZED ("
    + _BY_ORDER.format(
        keys="SELECT order_id FROM c",
        rows=f"{_ATTEMPT} WHERE order_id = k.order_id AND {_WINDOW}",
    )
    + ")"
)
#: The columns of an order the export writes.
_ORDER_COLUMNS = "id, merchant_reference, state, currency, amount_total, created_at"
#: The orders in ``{keys}``, each looked up by its primary key.
_ORDERS_BY_KEY = _BY_ORDER.format(
    keys="{keys}", rows=f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = k.order_id"
)
#: How long before the period an order paid in it is looked for among the orders placed
#: since (:data:`_PERIOD_ORDERS`): most are placed minutes before they are paid.
PLACED_BEFORE_PAID = "1 hour"
#: The orders of the period's payments (``p``): those placed from shortly before the period
#: to its end are read by a range of ``orders_newest`` and kept when a payment names them
#: (one pass over a day's orders costs a tenth of a primary-key probe each); the others (an
#: order paid long after it was placed) by their primary key. Either way each once.
_PERIOD_ORDERS = "SELECT * FROM near UNION ALL " + _ORDERS_BY_KEY.format(
    keys="SELECT DISTINCT order_id FROM p WHERE order_id NOT IN (SELECT id FROM near)"
)
_NEAR = (
    f"near AS MATERIALIZED (SELECT o.* FROM (SELECT {_ORDER_COLUMNS} FROM orders "
    f"WHERE created_at >= CAST(:start AS TIMESTAMPTZ) - INTERVAL '{PLACED_BEFORE_PAID}' "
    "AND created_at <= CAST(:end AS TIMESTAMPTZ) OFFSET 0) o "
    "WHERE o.id IN (SELECT order_id FROM p))"
)
#: The attempts ``{attempts}`` and the orders ``{orders}``, each row once, tagged with its
#: file (``a``: the attempts, ``o``: the orders), as the export's CSV files have them.
_CSV = (
    "WITH {ctes} "
    "SELECT 'a' AS part, order_id AS c1, provider AS c2, provider_ref AS c3, state AS c4, "
    f"{_ISO_UTC.format('updated_at')} AS c5, NULL AS c6 FROM {{attempts}} "
    "UNION ALL SELECT 'o', id, merchant_reference, state, currency, "
    f"CAST(amount_total AS TEXT), {_ISO_UTC.format('created_at')} FROM ({{orders}}) o"
)


def scope_csv(*, provider: bool, period: bool, window: bool) -> list[str]:
    """The statements streaming a scope (``copy_scope``), through ``:provider`` or not, with
    a period (``:start``, ``:end``) or not, with a window (``:window_from``,
    ``:window_to``) or not: the period's payments and their orders, by the index of the
    payments; then the rest, its lines read from :data:`LINE_SETTINGS`. The two share no
    row; they run side by side where storage can (``copy_csv``)."""
    through = " AND provider = :provider" if provider else ""
    rest = _SCOPE_REST.format(window=_SCOPE_WINDOW if window else "")
    statements = [
        _CSV.format(
            ctes=f"{_SCOPE}, {rest}, {_ORDER_REFS}",
            attempts="b",
            orders=_ORDERS_BY_KEY.format(keys=_SCOPE_REST_ORDERS),
        )
    ]
    if period:
        statements.insert(
            0,
            _CSV.format(
                ctes=f"p AS MATERIALIZED ({_ATTEMPT} WHERE {{period}}), {_NEAR}",
                attempts="p",
                orders=_PERIOD_ORDERS,
            ),
        )
    period_sql = _PERIOD.format(provider=through) if period else "false"
    return [s.format(period=period_sql, provider=through) for s in statements]


def candidates_csv(*, provider: bool) -> str:
    """The statement streaming the candidates of loose lines (``copy_candidates``)."""
    orders = _ORDERS_BY_KEY.format(keys="SELECT DISTINCT order_id FROM a")
    return _CSV.format(ctes=CANDIDATES, attempts="a", orders=orders).format(
        paid_through=" AND p.provider = :provider" if provider else "",
        provider=" AND provider = :provider" if provider else "",
    )


def line_settings(lines: LineRefs) -> dict[str, str]:
    """The settings :func:`scope_csv` reads ``lines`` from."""
    return {setting: getattr(lines, name) for name, setting in LINE_SETTINGS.items()}


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
        lines: LineRefs,
        window_from: datetime | None = None,
        window_to: datetime | None = None,
    ) -> tuple[int, int] | None:
        """Stream a scope's attempts, then their orders and those its lines' order
        references name, to two CSV files: two statements side by side in one snapshot
        (:func:`scope_csv`); ``(orders, attempts)`` written, or ``None`` where the driver
        cannot stream (nothing written)."""
        period = paid_from is not None and paid_to is not None
        window = period and window_from is not None and window_to is not None
        params: dict[str, Any] = {"start": paid_from, "end": paid_to, "provider": provider}
        if window:
            params.update(window_from=window_from, window_to=window_to)
        first, *rest = scope_csv(provider=provider is not None, period=period, window=window)
        statements = [
            Streamed(first, params),
            *(Streamed(s, params, line_settings(lines)) for s in rest),
        ]
        if not period:  # the only statement reads the lines
            statements = [Streamed(first, params, line_settings(lines))]
        return await self._copy(orders_csv, attempts_csv, statements)

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
        }
        statement = candidates_csv(provider=provider is not None)
        return await self._copy(orders_csv, attempts_csv, [Streamed(statement, params)])

    async def _copy(
        self, orders_csv: Path, attempts_csv: Path, statements: list[Streamed]
    ) -> tuple[int, int] | None:
        written = await self._conn.copy_csv(
            statements,
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
