"""The matching engine: settlement lines and orders in DuckDB, joined in bounded memory.

Report files are read by DuckDB directly (or after :func:`~.sources.prepare`), the orders
come as two CSV files exported from SQLite or PostgreSQL (:mod:`.export`). Each charge line
is matched to an order by the provider's reference, else by order id or merchant
reference, else by amount and currency within a date window (lower confidence). DuckDB
spills to ``workdir`` beyond ``memory_limit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from orderguard.reconcile import categories as c
from orderguard.reconcile import sql
from orderguard.reconcile.formats import Columns, literal, quote
from orderguard.reconcile.sources import LineError, Source, prepare

_ORDERS_COLUMNS = (
    "{'order_id': 'VARCHAR', 'merchant_reference': 'VARCHAR', 'state': 'VARCHAR', "
    "'currency': 'VARCHAR', 'amount': 'BIGINT', 'created_at': 'TIMESTAMPTZ'}"
)
_ATTEMPTS_COLUMNS = (
    "{'order_id': 'VARCHAR', 'provider': 'VARCHAR', 'provider_ref': 'VARCHAR', "
    "'state': 'VARCHAR', 'updated_at': 'TIMESTAMPTZ'}"
)
#: Order states whose payment a report must confirm.
_PAID_STATES = "('paid', 'refunded')"
_RESULT_COLUMNS = (
    "file_no, line, category, kind, via, ref, order_ref, order_id, gross, fee, currency, "
    "expected_amount, expected_currency, ts"
)


@dataclass(frozen=True)
class EngineOptions:
    """How to match."""

    period_from: datetime | None = None
    period_to: datetime | None = None
    #: Days either side of a line's time within which an amount match is accepted.
    window_days: int = 3
    #: Only orders paid through this provider are expected in the report (None: all).
    provider: str | None = None
    memory_limit: str = "1GB"
    threads: int | None = None


@dataclass(frozen=True)
class Result:
    """One settlement line's outcome, or an order the report did not confirm."""

    category: str
    file: str | None
    line: int | None
    kind: str | None
    via: str | None
    provider_ref: str | None
    order_ref: str | None
    order_id: str | None
    amount: int | None
    fee: int | None
    currency: str | None
    expected_amount: int | None
    expected_currency: str | None
    at: datetime | None

    @property
    def place(self) -> str:
        """``file:line``, or ``-`` for an order no line names."""
        return f"{self.file}:{self.line}" if self.file else "-"


@dataclass(frozen=True)
class Total:
    """Lines of one category in one currency: how many, and their gross, fee and net."""

    category: str
    currency: str
    count: int
    gross: int
    fee: int
    net: int


@dataclass
class Outcome:
    """Everything a run found, small enough to keep in memory (exceptions stream)."""

    files: list[str]
    counts: dict[str, int]
    totals: list[Total]
    errors: list[LineError]
    period_from: datetime | None
    period_to: datetime | None
    lines: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    """One reconciliation run's DuckDB database (in ``workdir``, spilled to disk)."""

    def __init__(self, workdir: Path, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self._workdir = workdir
        self._db = duckdb.connect(str(workdir / "reconcile.duckdb"))
        self._db.execute(f"SET memory_limit = {literal(self.options.memory_limit)}")
        self._db.execute(f"SET temp_directory = {literal(str(workdir / 'spill'))}")
        self._db.execute("SET preserve_insertion_order = true")
        if self.options.threads:
            self._db.execute(f"SET threads = {int(self.options.threads)}")
        sql.install(self._db)
        self._db.execute(
            "CREATE TABLE lines (file_no INTEGER, line BIGINT, kind VARCHAR, ref VARCHAR, "
            "order_ref VARCHAR, currency VARCHAR, ts TIMESTAMPTZ, gross BIGINT, fee BIGINT)"
        )
        self._db.execute("CREATE TABLE line_errors (file_no INTEGER, line BIGINT, message VARCHAR)")
        self._files: list[str] = []

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ loading

    def load_orders(self, orders_csv: Path, attempts_csv: Path) -> None:
        """The orders and their payment attempts, as exported."""
        self._db.execute(
            f"CREATE TABLE ord AS SELECT * FROM read_csv({literal(str(orders_csv))}, "
            f"header = true, auto_detect = false, columns = {_ORDERS_COLUMNS})"
        )
        self._db.execute(
            f"CREATE TABLE att AS SELECT * FROM read_csv({literal(str(attempts_csv))}, "
            f"header = true, auto_detect = false, columns = {_ATTEMPTS_COLUMNS})"
        )
        self._db.execute(
            "CREATE TABLE refs AS SELECT provider_ref, min(order_id) AS order_id FROM att "
            "WHERE provider_ref IS NOT NULL GROUP BY provider_ref"
        )
        self._db.execute(
            "CREATE TABLE paid AS SELECT order_id, min(updated_at) AS paid_at, "
            "min(provider) AS provider, min(provider_ref) AS provider_ref FROM att "
            "WHERE state IN ('succeeded', 'refunded') GROUP BY order_id"
        )

    def load_report(self, source: Source) -> None:
        """Read one report's lines; lines that cannot be used become line errors."""
        file_no = len(self._files)
        self._files.append(str(source.path))
        table = f"raw_{file_no}"
        if source.direct:
            columns = "{" + ", ".join(f"{literal(h)}: 'VARCHAR'" for h in source.header) + "}"
            self._db.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv({literal(str(source.path))}, "
                f"header = true, auto_detect = false, columns = {columns}, "
                f"delim = {literal(source.delimiter)}, quote = '\"', escape = '\"', "
                f"skip = {source.header_line - 1}, store_rejects = true, "
                f"rejects_table = 'rejects_{file_no}', rejects_scan = 'scan_{file_no}')"
            )
            line = self._direct_line_numbers(file_no, source)
        else:
            prepared = self._workdir / f"prepared_{file_no}.csv"
            for error in prepare(source, prepared):
                self._error(file_no, error.line, error.message)
            columns = "{'__line': 'BIGINT', " + ", ".join(
                f"{literal(h)}: 'VARCHAR'" for h in source.header
            )
            self._db.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv({literal(str(prepared))}, "
                f"header = true, auto_detect = false, columns = {columns}}}, quote = '\"', "
                "escape = '\"')"
            )
            line = "__line"
        self._normalise(file_no, table, line, source)
        self._db.execute(f"DROP TABLE {table}")

    def _direct_line_numbers(self, file_no: int, source: Source) -> str:
        """SQL for a directly read row's line number, counting the lines DuckDB rejected."""
        first = source.header_line + 1
        rejects = self._db.execute(
            f"SELECT line, any_value(error_message) FROM rejects_{file_no} "
            "GROUP BY line ORDER BY line"
        ).fetchall()
        row = self._db.execute(f"SELECT count(*) FROM raw_{file_no}").fetchone()
        last = first + (int(row[0]) if row else 0) + len(rejects) - 1
        cut = _ends_without_newline(source.path)
        for number, message in rejects:
            text = _reject_message(str(message))
            if cut and int(number) == last and "truncated" not in text:
                text += " (the file looks truncated)"
            self._error(file_no, int(number), text)
        if not rejects:
            return f"rowid + {first}"
        # Before rejected line j (0-based), ``gap_j`` good rows were read: a row with rowid
        # k sits after every rejected line whose gap is <= k.
        gaps = [int(n) - first - j for j, (n, _) in enumerate(rejects)]
        self._db.execute(f"CREATE TABLE gaps_{file_no} AS SELECT unnest(?) AS g", [gaps])
        before = f"(SELECT count(*) FROM gaps_{file_no} g WHERE g.g <= raw_{file_no}.rowid)"
        return f"rowid + {first} + {before}"

    def _normalise(self, file_no: int, table: str, line: str, source: Source) -> None:
        layout = source.layout
        p = layout.project(Columns(source.header))
        fees = p["fee"]
        assert isinstance(fees, list)
        minor = "true" if layout.minor_units else "false"
        decimal = literal(layout.decimal)

        def scaled(expr: str) -> str:
            return f"og_scaled({expr}, cur.e, {decimal}, {minor})"

        fee_sum = " + ".join(
            f"COALESCE(og_minor({scaled(f'fee_{i}')}), 0)" for i in range(len(fees))
        )
        fee_bad = " OR ".join(
            f"(fee_{i} IS NOT NULL AND og_minor({scaled(f'fee_{i}')}) IS NULL)"
            for i in range(len(fees))
        )
        fee_cols = "".join(f", {expr} AS fee_{i}" for i, expr in enumerate(fees))
        self._db.execute(
            f"""
            CREATE TEMP TABLE norm AS
            SELECT p.*, cur.e AS e,
                og_minor({scaled("credit")}) AS credit_m,
                og_minor({scaled("debit")}) AS debit_m,
                {fee_sum or "0"} AS fee_m,
                {fee_bad or "false"} AS fee_bad,
                og_time(at_text) AS ts
            FROM (
                SELECT {line} AS line, {p["kind"]} AS kind, {p["ref"]} AS ref,
                    {p["order_ref"]} AS order_ref,
                    upper(trim({p["currency"]})) AS currency, {p["at"]} AS at_text,
                    {p["credit"]} AS credit, {p["debit"]} AS debit{fee_cols}
                FROM {table}
            ) p LEFT JOIN og_currency cur ON cur.code = p.currency
            """
        )
        self._db.execute(
            f"""
            INSERT INTO line_errors
            SELECT {file_no}, line, CASE
                WHEN currency IS NULL THEN 'no currency'
                WHEN e IS NULL THEN 'unknown currency ' || currency
                WHEN credit IS NULL AND debit IS NULL THEN 'no amount'
                WHEN (credit IS NOT NULL AND credit_m IS NULL)
                  OR (debit IS NOT NULL AND debit_m IS NULL)
                  THEN 'amount ' || COALESCE(credit, debit) || ' is not an amount of ' || currency
                WHEN fee_bad THEN 'the fee is not an amount of ' || currency
                ELSE 'time ' || at_text || ' not understood' END
            FROM norm
            WHERE e IS NULL OR (credit IS NULL AND debit IS NULL)
               OR (credit IS NOT NULL AND credit_m IS NULL)
               OR (debit IS NOT NULL AND debit_m IS NULL) OR fee_bad
               OR (at_text IS NOT NULL AND ts IS NULL)
            """
        )
        self._db.execute(
            f"""
            INSERT INTO lines
            SELECT {file_no}, line, kind, ref, order_ref, currency, ts,
                COALESCE(credit_m, 0) - COALESCE(debit_m, 0), fee_m
            FROM norm
            WHERE NOT (e IS NULL OR (credit IS NULL AND debit IS NULL)
               OR (credit IS NOT NULL AND credit_m IS NULL)
               OR (debit IS NOT NULL AND debit_m IS NULL) OR fee_bad
               OR (at_text IS NOT NULL AND ts IS NULL))
            """
        )
        self._db.execute("DROP TABLE norm")

    def _error(self, file_no: int, line: int, message: str) -> None:
        self._db.execute("INSERT INTO line_errors VALUES (?, ?, ?)", [file_no, line, message])

    # ------------------------------------------------------------------ matching

    def match(self) -> Outcome:
        """Match every line; the results stay in DuckDB, read by :meth:`results`."""
        db = self._db
        db.execute(
            """
            CREATE TABLE linked AS
            SELECT l.*, COALESCE(r.order_id, o1.order_id, o2.order_id) AS order_id,
                CASE WHEN r.order_id IS NOT NULL THEN 'reference'
                     WHEN o1.order_id IS NOT NULL THEN 'order_id'
                     WHEN o2.order_id IS NOT NULL THEN 'merchant_reference' END AS via
            FROM lines l
            LEFT JOIN refs r ON r.provider_ref = l.ref
            LEFT JOIN ord o1 ON o1.order_id = l.order_ref
            LEFT JOIN ord o2 ON o2.merchant_reference = l.order_ref
            """
        )
        self._match_by_amount()
        db.execute(
            """
            CREATE TABLE results AS
            SELECT l.file_no, l.line,
                CASE WHEN l.kind = 'charge' THEN CASE
                        WHEN l.order_id IS NULL THEN 'missing_in_orders'
                        WHEN row_number() OVER (PARTITION BY l.kind = 'charge', l.order_id
                             ORDER BY l.file_no, l.line) > 1 THEN 'duplicate'
                        WHEN o.currency <> l.currency THEN 'currency_mismatch'
                        WHEN o.amount <> l.gross THEN 'amount_mismatch'
                        ELSE 'matched' END
                     WHEN l.kind IN ('refund', 'chargeback', 'fee') THEN l.kind
                     ELSE 'other' END AS category,
                l.kind, l.via, l.ref, l.order_ref, l.order_id, l.gross, l.fee, l.currency,
                o.amount AS expected_amount, o.currency AS expected_currency, l.ts
            FROM linked l LEFT JOIN ord o ON o.order_id = l.order_id
            """
        )
        self._orphan_duplicates()
        period = self._period()
        self._missing_at_provider(*period)
        return self._outcome(*period)

    def _match_by_amount(self) -> None:
        """Charges named by nothing: an amount and currency only one free order has."""
        loose = self._db.execute(
            "SELECT count(*) FROM linked WHERE kind = 'charge' AND order_id IS NULL "
            "AND ts IS NOT NULL"
        ).fetchone()
        if not loose or not loose[0]:
            return
        days = int(self.options.window_days)
        self._db.execute(
            f"""
            CREATE TEMP TABLE by_amount AS
            WITH loose AS (
                SELECT file_no, line, currency, gross, ts FROM linked
                WHERE kind = 'charge' AND order_id IS NULL AND ts IS NOT NULL),
            free AS (
                SELECT o.order_id, o.currency, o.amount, p.paid_at FROM ord o
                JOIN paid p USING (order_id)
                WHERE o.state IN {_PAID_STATES} AND NOT EXISTS (
                    SELECT 1 FROM linked l WHERE l.order_id = o.order_id AND l.kind = 'charge')),
            candidates AS (
                SELECT l.file_no, l.line, f.order_id FROM loose l JOIN free f
                ON f.currency = l.currency AND f.amount = l.gross
                AND f.paid_at BETWEEN l.ts - INTERVAL {days} DAY AND l.ts + INTERVAL {days} DAY)
            SELECT file_no, line, order_id FROM candidates
            QUALIFY count(*) OVER (PARTITION BY file_no, line) = 1
                AND count(*) OVER (PARTITION BY order_id) = 1
            """
        )
        self._db.execute(
            "UPDATE linked SET order_id = b.order_id, via = 'amount_and_date' FROM by_amount b "
            "WHERE linked.file_no = b.file_no AND linked.line = b.line"
        )

    def _orphan_duplicates(self) -> None:
        """A charge no order explains, listed twice: the second line is a duplicate."""
        self._db.execute(
            """
            UPDATE results SET category = 'duplicate' FROM (
                SELECT file_no, line FROM results WHERE category = 'missing_in_orders'
                AND ref IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY ref ORDER BY file_no, line) > 1) d
            WHERE results.file_no = d.file_no AND results.line = d.line
            """
        )

    def _period(self) -> tuple[datetime | None, datetime | None]:
        start, end = self.options.period_from, self.options.period_to
        if start is None or end is None:
            row = self._db.execute("SELECT min(ts), max(ts) FROM lines").fetchone()
            start = start or (row[0] if row else None)
            end = end or (row[1] if row else None)
        return start, end

    def _missing_at_provider(self, start: datetime | None, end: datetime | None) -> None:
        if start is None or end is None:
            return
        provider = (
            f"AND p.provider = {literal(self.options.provider)}" if self.options.provider else ""
        )
        self._db.execute(
            f"""
            INSERT INTO results ({_RESULT_COLUMNS})
            SELECT NULL, NULL, 'missing_at_provider', 'charge', NULL, p.provider_ref, NULL,
                o.order_id, NULL, NULL, NULL, o.amount, o.currency, p.paid_at
            FROM ord o JOIN paid p USING (order_id)
            WHERE o.state IN {_PAID_STATES} AND p.paid_at BETWEEN ? AND ? {provider}
              AND NOT EXISTS (SELECT 1 FROM results r
                              WHERE r.order_id = o.order_id AND r.kind = 'charge')
            """,
            [start, end],
        )

    def _outcome(self, start: datetime | None, end: datetime | None) -> Outcome:
        counts = dict.fromkeys(c.ALL, 0)
        for category, count in self._db.execute(
            "SELECT category, count(*) FROM results GROUP BY category"
        ).fetchall():
            counts[str(category)] = int(count)
        totals = [
            Total(str(cat), str(cur), int(n), int(g), int(f), int(g) - int(f))
            for cat, cur, n, g, f in self._db.execute(
                "SELECT category, COALESCE(currency, expected_currency), count(*), "
                "COALESCE(sum(gross), sum(expected_amount)), COALESCE(sum(fee), 0) "
                "FROM results GROUP BY ALL ORDER BY 1, 2"
            ).fetchall()
        ]
        errors = [
            LineError(self._files[int(f)], int(line), str(message))
            for f, line, message in self._db.execute(
                "SELECT file_no, line, message FROM line_errors ORDER BY file_no, line"
            ).fetchall()
        ]
        row = self._db.execute("SELECT count(*) FROM lines").fetchone()
        return Outcome(
            files=list(self._files),
            counts=counts,
            totals=totals,
            errors=errors,
            period_from=start,
            period_to=end,
            lines=int(row[0]) if row else 0,
        )

    # ------------------------------------------------------------------ reading

    def results(
        self, categories: frozenset[str] = c.EXCEPTIONS, *, batch: int = 5000
    ) -> Iterator[list[Result]]:
        """The results of ``categories``, in file and line order, in batches."""
        names = ", ".join(literal(cat) for cat in sorted(categories))
        cursor = self._db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM results WHERE category IN ({names}) "
            "ORDER BY file_no NULLS LAST, line, order_id"
        )
        while rows := cursor.fetchmany(batch):
            yield [self._result(row) for row in rows]

    def _result(self, row: tuple[Any, ...]) -> Result:
        file_no, line, category, kind, via, ref, order_ref, order_id = row[:8]
        gross, fee, currency, expected, expected_currency, at = row[8:]
        return Result(
            category=category,
            file=self._files[file_no] if file_no is not None else None,
            line=line,
            kind=kind,
            via=via,
            provider_ref=ref,
            order_ref=order_ref,
            order_id=order_id,
            amount=gross,
            fee=fee,
            currency=currency,
            expected_amount=expected,
            expected_currency=expected_currency,
            at=at,
        )


def _ends_without_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) not in (b"\n", b"\r")


def _reject_message(message: str) -> str:
    """DuckDB's reason for rejecting a line, in a reader's words."""
    if "Expected Number of Columns" in message:
        expected, _, found = message.partition("Found:")
        want = expected.split(":")[-1].strip()
        return f"expected {want} columns, found {found.strip()}"
    if "unicode" in message.lower() or "encod" in message.lower():
        return "not valid UTF-8 text (wrong encoding?)"
    if "quote" in message.lower():
        return "an unterminated quoted value (the file looks truncated)"
    return message.split("\n")[0]


__all__ = ["Engine", "EngineOptions", "Outcome", "Result", "Total", "quote"]
