"""The matching engine: settlement lines and orders in DuckDB, joined in bounded memory.

Report files are read by DuckDB directly (or after :func:`~.sources.prepare`), the orders
come as two CSV files exported from storage: only those :meth:`Engine.scope` says matching
can use, once the reports are read (:func:`orderguard.reconcile.export.export_scope`), or
every one (:func:`~orderguard.reconcile.export.export_orders`). Each charge line
is matched to an order by the provider's reference, else by order id or merchant
reference, else by amount and currency within a date window (lower confidence). DuckDB
spills to ``workdir`` beyond ``memory_limit``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from orderguard.reconcile import categories as c
from orderguard.reconcile import sql
from orderguard.reconcile.cells import neutralise
from orderguard.reconcile.formats import Columns, Projection, literal
from orderguard.reconcile.outcome import (
    Candidates,
    EngineOptions,
    Outcome,
    Result,
    Scope,
    Total,
    Unexplained,
)
from orderguard.reconcile.sources import LineError, Source, prepare
from orderguard.storage.ports import LineRefs

_ORDERS_COLUMNS = (
    "{'order_id': 'VARCHAR', 'merchant_reference': 'VARCHAR', 'state': 'VARCHAR', "
    "'currency': 'VARCHAR', 'amount': 'BIGINT', 'created_at': 'VARCHAR'}"
)
_ATTEMPTS_COLUMNS = (
    "{'order_id': 'VARCHAR', 'provider': 'VARCHAR', 'provider_ref': 'VARCHAR', "
    "'state': 'VARCHAR', 'updated_at': 'VARCHAR'}"
)
#: Order states whose payment a report must confirm, and the attempts that paid them.
_PAID_STATES = "('paid', 'refunded')"
_PAID_ATTEMPTS = "('succeeded', 'refunded')"
#: A result's category, from its kind, its order and the duplicate mark.
_CATEGORY = """CASE
    WHEN kind = 'charge' THEN CASE
        WHEN dup THEN 'duplicate'
        WHEN order_id IS NULL THEN 'missing_in_orders'
        WHEN expected_currency <> currency THEN 'currency_mismatch'
        WHEN expected_amount <> gross THEN 'amount_mismatch'
        ELSE 'matched' END
    WHEN kind IN ('refund', 'chargeback', 'fee') THEN kind
    ELSE 'other' END"""
#: A time as text in UTC ("2026-11-01 09:30:00+00"), without a time zone lookup per row.
_UTC_TEXT = "CAST(make_timestamp(epoch_us({0})) AS VARCHAR) || '+00'"
#: Characters DuckDB expands in a path it reads (as a shell would).
GLOB_CHARACTERS = frozenset("*?[")
#: A report line that can confirm a payment (the charges' references claim their attempts).
_USABLE_CHARGE = "(kind = 'charge' AND error IS NULL)"
#: A charge line no reference matched: left to matching by amount and date.
_LOOSE = "res.kind = 'charge' AND res.order_id IS NULL AND res.ts IS NOT NULL AND res.error IS NULL"
_RESULT_COLUMNS = (
    "file_no, line, category, kind, via, ref, order_ref, order_id, gross, fee, currency, "
    "expected_amount, expected_currency, ts"
)


class Engine:
    """One reconciliation run's DuckDB database (in memory, spilling to ``workdir``).

    Tables: ``raw_N`` (report N's lines, parsed, in the file's order, until they are
    joined), ``res`` (every report line with its error if any, joined to its order),
    ``ord`` (the exported orders, read only for matching by order id or merchant reference),
    ``orders_named``, ``unconfirmed`` (paid orders no charge line names), ``repeated``
    (orders more than one charge line names) and ``missing`` (the unconfirmed orders the
    report's period covers); the view ``results`` holds the usable lines and the missing
    orders, each with its category.
    """

    def __init__(self, workdir: Path, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self._workdir = workdir
        # In memory, spilling to ``workdir`` past the limit: nothing is written that need not be.
        self._db = duckdb.connect(":memory:")
        self._db.execute(f"SET memory_limit = {literal(self.options.memory_limit)}")
        self._db.execute(f"SET temp_directory = {literal(str(workdir / 'spill'))}")
        # Only the direct scan needs its rows kept in order (rowid = line): every other
        # statement is free to run in parallel without it, results are read with ORDER BY.
        self._db.execute("SET preserve_insertion_order = false")
        self._db.execute("SET enable_progress_bar = false")
        if self.options.threads:
            self._db.execute(f"SET threads = {int(self.options.threads)}")
        sql.install(self._db)
        self._db.execute(
            "CREATE TABLE res (file_no INTEGER, line BIGINT, kind og_kind, ref VARCHAR, "
            "order_ref VARCHAR, currency og_code, ts TIMESTAMPTZ, gross BIGINT, fee BIGINT, "
            "error VARCHAR, order_id VARCHAR, via og_via, expected_amount BIGINT, "
            "expected_currency og_code, dup BOOLEAN, "
            "attempt_at TIMESTAMPTZ, attempt_paid BOOLEAN)"
        )
        self._db.execute("CREATE TABLE line_errors (file_no INTEGER, line BIGINT, message VARCHAR)")
        self._files: list[str] = []
        #: Rows read from the reports (each becomes one row of ``res``).
        self._rows = 0
        #: Per report: the query giving its parsed lines (with ``file_no`` and ``line``), and
        #: its source and rows read when DuckDB read it directly (for its rejected lines).
        self._lines: list[str] = []
        self._direct: list[tuple[int, Source, int]] = []
        self._exports: tuple[Path, Path] | None = None
        self._has_orders = False
        #: The period the reports cover, and the times matching reads payments around
        #: (set by :meth:`match_lines`).
        self._period: tuple[datetime | None, datetime | None] = (None, None)
        self._window: tuple[datetime | None, datetime | None] = (None, None)
        #: :meth:`_span` of the first ``n`` reports read, once worked out: ``(n, span)``.
        self._spanned: tuple[int, tuple[datetime | None, datetime | None]] | None = None

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ loading

    def load_orders(self, orders_csv: Path, attempts_csv: Path) -> None:
        """Where the exported orders and payment attempts are. They are read while the lines
        are joined to them (:meth:`match`: one pass, as a plain join would); the orders alone
        (``ord``) only if a line needs matching by order id or merchant reference."""
        for path in (orders_csv, attempts_csv):
            if not path.is_file():
                raise FileNotFoundError(f"the order export {path} does not exist")
        self._exports = (orders_csv, attempts_csv)

    def _orders(self) -> str:
        """The orders table, read from the export the first time it is needed."""
        if not self._has_orders:
            orders_csv, _ = self._export()
            self._db.execute(
                "CREATE TABLE ord AS SELECT order_id, merchant_reference, state, currency, "
                f"amount FROM {_read(orders_csv, _ORDERS_COLUMNS)}"
            )
            self._has_orders = True
        return "ord"

    def _export(self) -> tuple[Path, Path]:
        if self._exports is None:
            raise RuntimeError("load_orders() comes before matching")
        return self._exports

    def load_report(self, source: Source) -> None:
        """Read one report's lines; lines that cannot be used become line errors."""
        file_no = len(self._files)
        self._files.append(str(source.path))
        cols = Columns(source.header)
        projection = source.layout.project(cols)
        if source.direct:
            first = source.header_line + 1
            columns = "{" + ", ".join(f"{literal(h)}: 'VARCHAR'" for h in source.header) + "}"
            scan = (
                f"read_csv({literal(str(self._literal_path(source.path, file_no)))}, "
                f"header = true, auto_detect = false, columns = {columns}, "
                f"delim = {literal(source.delimiter)}, quote = '\"', escape = '\"', "
                f"skip = {source.header_line - 1}, store_rejects = true, "
                f"rejects_table = 'rejects_{file_no}', rejects_scan = 'scan_{file_no}')"
            )
            # Everything about a line is worked out in this scan, in parallel, with no join (a
            # join may reorder rows): the table keeps the file's order, rowid k is row k read.
            self._db.execute("SET preserve_insertion_order = true")
            try:
                self._db.execute(
                    f"CREATE TEMP TABLE raw_{file_no} AS {self._parse(source, projection, scan)}"
                )
            finally:
                self._db.execute("SET preserve_insertion_order = false")
            self._lines.append(
                f"SELECT {file_no} AS file_no, rowid + {first} AS line, * FROM raw_{file_no}"
            )
        else:
            prepared = self._workdir / f"prepared_{file_no}.csv"
            for error in prepare(source, prepared):
                self._error(file_no, error.line, error.message)
            columns = "{'__line': 'BIGINT', " + ", ".join(
                f"{literal(h)}: 'VARCHAR'" for h in source.header
            )
            scan = (
                f"read_csv({literal(str(prepared))}, header = true, "
                f"auto_detect = false, columns = {columns}}}, quote = '\"', escape = '\"')"
            )
            query = self._parse(source, projection, scan, line="__line AS line, ")
            self._db.execute(f"CREATE TEMP TABLE raw_{file_no} AS {query}")
            self._lines.append(f"SELECT {file_no} AS file_no, * FROM raw_{file_no}")
        read = self._count(f"SELECT count(*) FROM raw_{file_no}")
        self._rows += read
        if source.direct:
            self._direct.append((file_no, source, read))

    def _literal_path(self, path: Path, file_no: int) -> Path:
        """A path DuckDB reads as ``path`` itself: DuckDB expands ``*``, ``?`` and ``[...]`` in
        the paths it reads (``report*.csv`` would read every report beside it), so a path
        holding one is read through a link, in the work directory, whose name holds none."""
        if not any(char in str(path) for char in GLOB_CHARACTERS):
            return path
        link = self._workdir / f"report_{file_no}.csv"
        link.symlink_to(path.resolve())
        return link

    def _count_rejected_lines(self, file_no: int, source: Source, read: int) -> None:
        """Report the lines DuckDB rejected, and renumber the ``read`` rows read after them."""
        first = source.header_line + 1
        rejects = self._db.execute(
            f"SELECT line, any_value(error_message) FROM rejects_{file_no} "
            "GROUP BY line ORDER BY line"
        ).fetchall()
        if not rejects:
            return
        last = first + read + len(rejects) - 1
        cut = _ends_without_newline(source.path)
        for number, message in rejects:
            text = _reject_message(str(message))
            if cut and int(number) == last and "truncated" not in text:
                text += " (the file looks truncated)"
            self._error(file_no, int(number), text)
        # Before rejected line j (0-based), ``gap_j`` good rows were read: the row read k-th
        # (0-based) sits after every rejected line whose gap is <= k.
        gaps = [int(n) - first - j for j, (n, _) in enumerate(rejects)]
        self._db.execute(f"CREATE TEMP TABLE gaps_{file_no} AS SELECT unnest(?) AS g", [gaps])
        self._db.execute(
            f"UPDATE res SET line = line + (SELECT count(*) FROM gaps_{file_no} g "
            f"WHERE g.g <= res.line - {first}) WHERE file_no = {file_no}"
        )

    def _parse(self, source: Source, p: Projection, relation: str, line: str = "") -> str:
        """The query reading one report's columns into a line: kind, references, currency,
        time, gross and fee in minor units, and the first thing wrong with it (``error``,
        NULL when the line is usable)."""
        fees = p["fee"]
        assert isinstance(fees, list)
        decimal = literal(source.layout.decimal)
        minor = "true" if source.layout.minor_units else "false"
        credit, debit = p["credit"], p["debit"]
        assert isinstance(credit, str) and isinstance(debit, str)
        texts = {"credit": credit, "debit": debit}
        texts.update((f"fee_{i}", expr) for i, expr in enumerate(fees))
        # Only amounts the report has are read (a layout without debits says NULL).
        live = [t for t, expr in texts.items() if expr.strip().upper() != "NULL"]
        # Each amount is read as millionths (``_s``), then as minor units of the line's
        # currency (``_m``, NULL when it is not one). The usual shapes first, each evaluated
        # once: a plain amount ("12.34") and an ISO time without a zone ("2026-11-01
        # 09:30:00", UTC); og_micro and og_time for the others.
        if source.layout.decimal == ".":
            plain = "".join(
                f", TRY_CAST(TRY_CAST({t} AS DECIMAL(18, 6)) * 1000000 AS BIGINT) AS {t}_p"
                for t in live
            )
            micros = "".join(
                f", CASE WHEN {t}_p IS NOT NULL THEN {t}_p ELSE og_micro({t}, {decimal}) END "
                f"AS {t}_s"
                for t in live
            )
        else:
            plain = ""
            micros = "".join(f", og_micro({t}, {decimal}) AS {t}_s" for t in live)
        # Scaled first, made whole a level up: a macro's argument is repeated where used.
        whole = "".join(f", og_whole({t}_s, unit, {minor}) AS {t}_m" for t in live)
        bad = " OR ".join(f"({t} IS NOT NULL AND {t}_m IS NULL)" for t in live) or "false"
        minor_of = {t: f"COALESCE({t}_m, 0)" if t in live else "0" for t in texts}
        gross = f"{minor_of['credit']} - {minor_of['debit']}"
        fee_sum = " + ".join(minor_of[t] for t in list(texts)[2:]) or "0"
        outer = "line, " if line else ""
        # A time written without a zone is the provider's local time (UTC for most).
        hours = source.layout.local_utc_hours
        local = f" - INTERVAL {int(hours)} HOUR" if hours else ""
        local_other = (
            f" - CASE WHEN regexp_matches(at_text, '([+-][0-9]{{2}}:?[0-9]{{2}}|Z|UTC)$') "
            f"THEN INTERVAL 0 HOUR ELSE INTERVAL {int(hours)} HOUR END"
            if hours
            else ""
        )
        return f"""SELECT {outer}CAST(kind AS og_kind) AS kind, ref, order_ref,
            code AS currency, ts,
            {gross} AS gross, {fee_sum} AS fee,
            CASE WHEN currency IS NULL THEN 'no currency'
                WHEN code IS NULL THEN 'unknown currency ' || currency
                WHEN credit IS NULL AND debit IS NULL THEN 'no amount'
                WHEN {bad} THEN 'amount ' || COALESCE(credit, debit) || ' is not an amount of '
                       || currency
                WHEN at_text IS NOT NULL AND ts IS NULL
                  THEN 'time ' || at_text || ' not understood' END AS error
            FROM (
            SELECT *{whole} FROM (
            SELECT *, CASE WHEN iso IS NOT NULL
                    THEN make_timestamptz(epoch_us(iso)){local}
                ELSE og_time(at_text){local_other} END AS ts FROM (
            SELECT *, og_unit(code) AS unit{micros} FROM (
            SELECT *, try_strptime(at_text, '%Y-%m-%d %H:%M:%S') AS iso,
                TRY_CAST(currency AS og_code) AS code{plain} FROM (
                SELECT {line}{p["kind"]} AS kind, {p["ref"]} AS ref, {p["order_ref"]} AS order_ref,
                    upper(trim({p["currency"]})) AS currency, {p["at"]} AS at_text,
                    {", ".join(f"{expr} AS {t}" for t, expr in texts.items())}
                FROM {relation})))))"""

    def scope(self) -> Scope:
        """What :meth:`match` will read of the orders (after :meth:`load_report`), widened by
        :data:`SCOPE_MARGIN` on each side so that no difference in how a time is stored and
        read can leave one out: the payments of the period, the other payments near it of
        the orders those and the lines' references name when no charge line claims them,
        and what the lines name; what amount matching can use beyond that,
        :meth:`candidates` asks for apart. See :class:`~.outcome.Scope`."""
        first, last = self._span()
        start = _earliest(self.options.period_from or first, first)
        end = _latest(self.options.period_to or last, last)
        window = timedelta(days=int(self.options.window_days)) + SCOPE_MARGIN
        lines = LineRefs()
        if self._lines:
            # Each distinct line key once, written as JSON by DuckDB (no Python loop).
            row = self._db.execute(
                "SELECT to_json([k.ref FOR k IN keys]), to_json([k.order_ref FOR k IN keys]), "
                "to_json([k.charge FOR k IN keys]) FROM (SELECT list({ref: ref, "
                "order_ref: order_ref, charge: charge}) AS keys FROM (SELECT DISTINCT ref, "
                f"order_ref, COALESCE({_USABLE_CHARGE}, false) AS charge "
                f"FROM ({self._all_lines()}) WHERE ref IS NOT NULL OR order_ref IS NOT NULL))"
            ).fetchone()
            if row is not None and row[0] is not None:
                lines = LineRefs(refs=row[0], order_refs=row[1], charges=row[2])
        if start is None or end is None:  # no period: no payment is expected or matched
            return Scope(None, None, lines, self.options.provider)
        return Scope(
            paid_from=start - SCOPE_MARGIN,
            paid_to=end + SCOPE_MARGIN,
            lines=lines,
            provider=self.options.provider,
            window_from=start - window,
            window_to=end + window,
        )

    def candidates(self) -> Candidates | None:
        """After :meth:`match_lines`: the payments the charge lines that name nothing can
        be matched to by amount (see :class:`~.outcome.Candidates`), ``None`` when every
        charge line names its payment or order. Needed only when the orders were read by an
        incomplete :meth:`scope`; :meth:`add_candidates` takes them."""
        row = self._db.execute(
            f"SELECT min(ts), max(ts), list(DISTINCT gross) FROM res WHERE {_LOOSE}"
        ).fetchone()
        if row is None or row[0] is None:
            return None
        first, last, amounts = row
        start, end = self._window
        assert start is not None and end is not None  # a line's time widens the window
        days = timedelta(days=int(self.options.window_days))
        return Candidates(
            paid_from=first - days - SCOPE_MARGIN,
            paid_to=last + days + SCOPE_MARGIN,
            amounts=frozenset(int(a) for a in amounts),
            window_from=start - days - SCOPE_MARGIN,
            window_to=end + days + SCOPE_MARGIN,
            provider=self.options.provider,
        )

    def add_candidates(self, orders_csv: Path, attempts_csv: Path) -> None:
        """After :meth:`match_lines`: the payments :meth:`candidates` asked for, exported as
        :meth:`load_orders` takes them, as the payments no line names. A payment read twice
        changes nothing (an order unconfirmed or not, and when it was first paid, come out
        the same); one whose reference a usable line names is left out: the scope read it,
        and the join gave it to that line (two orders' payments under one reference are
        both the line's, and the line keeps one order: the other is neither confirmed nor
        unconfirmed)."""
        start, end = self._window
        days = int(self.options.window_days)
        self._db.execute(
            f"""
            INSERT INTO res (ref, order_id, expected_amount, expected_currency, dup,
                attempt_at, attempt_paid)
            SELECT a.provider_ref, o.order_id, o.amount, o.currency, false,
                CAST(a.paid_at AS TIMESTAMPTZ), true
            FROM {self._attempt_rows(attempts_csv)} a
            JOIN {self._order_rows(orders_csv)} o ON o.order_id = a.order_id
            WHERE a.paid_at IS NOT NULL AND o.paid AND CAST(a.paid_at AS TIMESTAMPTZ)
                BETWEEN ?::TIMESTAMPTZ - INTERVAL {days} DAY
                    AND ?::TIMESTAMPTZ + INTERVAL {days} DAY
              AND a.provider_ref NOT IN (
                SELECT ref FROM res WHERE file_no IS NOT NULL AND error IS NULL
                    AND ref IS NOT NULL)
            """,
            [start, end],
        )

    def _all_lines(self) -> str:
        """Every report's parsed lines, with ``file_no`` and ``line``."""
        return " UNION ALL BY NAME ".join(f"({q})" for q in self._lines) or (
            "SELECT * FROM res WHERE false"
        )

    def _join_lines(self, start: datetime | None, end: datetime | None) -> None:
        """Every report's lines into ``res``, each with the order whose payment its reference
        names: one pass over the exported attempts and orders, as a plain join would.

        The join is a full one: the attempts no usable line names come out too, as rows
        without a file (``file_no`` NULL), and so do the attempts named only by lines that are
        not charges (on those lines). :meth:`_unconfirmed` needs no other pass over the
        attempts, and takes those rows out of ``res``. Of the attempts no line names, only
        those paid between ``start`` and ``end``, give or take the amount-matching window,
        are kept: with a day's report against years of orders, ``res`` stays about the size
        of the report.
        """
        orders_csv, attempts_csv = self._export()
        unclaimed = "(r.line IS NULL OR r.kind <> 'charge')"
        paid = "(a.paid_at IS NOT NULL AND o.paid)"
        days = int(self.options.window_days)
        self._db.execute(
            f"""
            INSERT INTO res
            SELECT r.file_no, r.line, r.kind, COALESCE(r.ref, a.provider_ref), r.order_ref,
                r.currency, r.ts, r.gross, r.fee, r.error, o.order_id,
                CASE WHEN r.line IS NOT NULL AND o.order_id IS NOT NULL THEN 'reference' END,
                o.amount, o.currency, false,
                CASE WHEN {unclaimed} AND {paid} THEN CAST(a.paid_at AS TIMESTAMPTZ) END,
                CASE WHEN {unclaimed} THEN {paid} END
            FROM ({self._all_lines()}) r
            FULL JOIN {self._attempt_rows(attempts_csv)} a
                ON a.provider_ref = CASE WHEN r.error IS NULL THEN r.ref END
            LEFT JOIN {self._order_rows(orders_csv)} o ON o.order_id = a.order_id
            WHERE r.line IS NOT NULL OR ({paid} AND CAST(a.paid_at AS TIMESTAMPTZ)
                BETWEEN ?::TIMESTAMPTZ - INTERVAL {days} DAY
                    AND ?::TIMESTAMPTZ + INTERVAL {days} DAY)
            """,
            [start, end],
        )
        for file_no in range(len(self._lines)):
            self._db.execute(f"DROP TABLE raw_{file_no}")
        for file_no, source, read in self._direct:
            self._count_rejected_lines(file_no, source, read)

    def _attempt_rows(self, attempts_csv: Path) -> str:
        """An attempts export as the join needs it: what :meth:`_unconfirmed` needs of an
        attempt no charge line names, when it was paid, if it was (through the provider the
        report is about, when one is named). Reduced as it is read: the hash tables hold no
        more."""
        provider = self.options.provider
        through = f" AND provider = {literal(provider)}" if provider else ""
        return f"""(
            SELECT provider_ref, order_id, CASE WHEN state IN {_PAID_ATTEMPTS}{through}
                THEN updated_at END AS paid_at
            FROM {_read(attempts_csv, _ATTEMPTS_COLUMNS)} WHERE provider_ref IS NOT NULL)"""

    @staticmethod
    def _order_rows(orders_csv: Path) -> str:
        """An orders export as the join needs it: paid or not, amount and currency."""
        return f"""(
            SELECT order_id, state IN {_PAID_STATES} AS paid, amount,
                TRY_CAST(currency AS og_code) AS currency
            FROM {_read(orders_csv, _ORDERS_COLUMNS)})"""

    def _error(self, file_no: int, line: int, message: str) -> None:
        self._db.execute("INSERT INTO line_errors VALUES (?, ?, ?)", [file_no, line, message])

    # ------------------------------------------------------------------ matching

    def match(self) -> Outcome:
        """Match every line; the results stay in DuckDB, read by :meth:`results`."""
        self.match_lines()
        return self.finish()

    def match_lines(self) -> None:
        """The first half of :meth:`match`: every line joined to the payment or the order
        its references name. Then :meth:`candidates` tells what the lines that name nothing
        need, and :meth:`finish` matches them and finds what is missing."""
        first, last = self._span()
        # The period the reports cover: ``--from``/``--to``, else from their first line to the
        # end of their last line's time unit.
        self._period = (self.options.period_from or first, self.options.period_to or last)
        # Any paid order matching could need: in the period or near a line's time.
        self._window = (_earliest(self._period[0], first), _latest(self._period[1], last))
        self._join_lines(*self._window)
        self._one_row_per_line()
        self._match_by_payment_reference()
        self._match_by_order("order_id", "order_id")
        self._match_by_order("merchant_reference", "merchant_reference")

    def finish(self) -> Outcome:
        """The second half of :meth:`match` (after :meth:`match_lines`)."""
        self._unconfirmed()
        self._match_by_amount()
        self._mark_duplicates()
        self._missing_at_provider(*self._period)
        self._db.execute(
            f"""
            CREATE VIEW results AS
            SELECT * EXCLUDE (error, attempt_at, attempt_paid),
                {_CATEGORY} AS category
            FROM res WHERE error IS NULL
            UNION ALL BY NAME
            SELECT NULL::INTEGER AS file_no, NULL::BIGINT AS line, 'charge' AS kind,
                *, 'missing_at_provider' AS category FROM missing
            """
        )
        return self._outcome(*self._period)

    def _one_row_per_line(self) -> None:
        """Two attempts with one reference would double a line: keep one order per line."""
        if self._count("SELECT count(*) FROM res WHERE file_no IS NOT NULL") != self._rows:
            self._db.execute(
                "CREATE OR REPLACE TABLE res AS SELECT * FROM res WHERE file_no IS NULL "
                "UNION ALL (SELECT * FROM res WHERE file_no IS NOT NULL "
                "QUALIFY row_number() OVER (PARTITION BY file_no, line ORDER BY order_id) = 1)"
            )

    def _match_by_payment_reference(self) -> None:
        """Lines no reference matched whose order reference is the reference orderguard
        keeps for a paid attempt. A wallet's bill names a payment twice, by the provider's
        number (the line's reference) and by the merchant's ``out_trade_no`` (its order
        reference), and orderguard keeps the merchant's (Alipay, WeChat Pay). An attempt
        not paid here leaves its line to the other passes: money taken for a payment
        orderguard gave up is an orphan, not a match. Paid attempts of two orders under one
        reference give the line the lower order id, as :meth:`_one_row_per_line` does for a
        line's reference (one order, the same every run)."""
        if not self._count(
            "SELECT count(*) FROM res WHERE order_id IS NULL AND order_ref IS NOT NULL "
            "AND error IS NULL"
        ):
            return
        _, attempts_csv = self._export()
        self._db.execute(
            f"""
            UPDATE res SET order_id = o.order_id, via = 'reference', expected_amount = o.amount,
                expected_currency = TRY_CAST(o.currency AS og_code)
            FROM (
                SELECT provider_ref, min(order_id) AS order_id
                FROM {_read(attempts_csv, _ATTEMPTS_COLUMNS)}
                WHERE provider_ref IS NOT NULL AND state IN {_PAID_ATTEMPTS}
                GROUP BY provider_ref
            ) a JOIN {self._orders()} o ON o.order_id = a.order_id
            WHERE res.order_id IS NULL AND res.order_ref IS NOT NULL AND res.error IS NULL
              AND a.provider_ref = res.order_ref
            """
        )

    def _match_by_order(self, column: str, via: str) -> None:
        """Lines no reference matched, whose order reference is an order's ``column``."""
        loose = self._db.execute(
            "SELECT count(*) FROM res WHERE order_id IS NULL AND order_ref IS NOT NULL "
            "AND error IS NULL"
        ).fetchone()
        if not loose or not loose[0]:
            return
        self._db.execute(
            f"""
            UPDATE res SET order_id = o.order_id, via = '{via}', expected_amount = o.amount,
                expected_currency = TRY_CAST(o.currency AS og_code)
            FROM {self._orders()} o
            WHERE res.order_id IS NULL AND res.order_ref IS NOT NULL AND res.error IS NULL
              AND o.{column} = res.order_ref
            """
        )

    def _unconfirmed(self) -> None:
        """One pass over the orders the lines and attempts name: ``unconfirmed`` holds the paid
        orders no charge line names yet (for amount matching and missing orders), from the
        attempts :meth:`_join_lines` left without a charge line; ``repeated`` the orders more
        than one charge line names (for :meth:`_mark_duplicates`). Then ``res`` keeps only
        the report's lines."""
        charge = "kind = 'charge' AND error IS NULL"
        self._db.execute(
            f"""
            CREATE TEMP TABLE orders_named AS
            SELECT order_id, count(*) FILTER (WHERE {charge}) AS charges
            FROM res WHERE order_id IS NOT NULL AND ({charge} OR attempt_paid)
            GROUP BY order_id HAVING charges <> 1
            """
        )
        self._db.execute(
            """
            CREATE TEMP TABLE unconfirmed AS
            SELECT order_id, min(ref) AS provider_ref,
                min(attempt_at) AS paid_at, any_value(expected_amount) AS amount,
                any_value(expected_currency) AS currency
            FROM res SEMI JOIN (SELECT order_id FROM orders_named WHERE charges = 0) n
                USING (order_id)
            WHERE attempt_paid
            GROUP BY order_id
            """
        )
        self._db.execute(
            "CREATE TEMP TABLE repeated AS SELECT order_id FROM orders_named WHERE charges > 1"
        )
        self._db.execute("DELETE FROM res WHERE file_no IS NULL")

    def _match_by_amount(self) -> None:
        """Charges named by nothing: an amount and currency only one unconfirmed order has,
        paid within the window around the line's time."""
        loose = self._count(f"SELECT count(*) FROM res WHERE {_LOOSE}")
        if not loose:
            return
        days = int(self.options.window_days)
        self._db.execute(
            f"""
            CREATE TEMP TABLE by_amount AS
            SELECT l.file_no, l.line, u.order_id, u.amount, u.currency
            FROM res l JOIN unconfirmed u
              ON u.currency = l.currency AND u.amount = l.gross
             AND u.paid_at BETWEEN l.ts - INTERVAL {days} DAY AND l.ts + INTERVAL {days} DAY
            WHERE {_LOOSE.replace("res.", "l.")}
            QUALIFY count(*) OVER (PARTITION BY l.file_no, l.line) = 1
                AND count(*) OVER (PARTITION BY u.order_id) = 1
            """
        )
        self._db.execute(
            "UPDATE res SET order_id = b.order_id, via = 'amount_and_date', "
            "expected_amount = b.amount, expected_currency = b.currency FROM by_amount b "
            "WHERE res.file_no = b.file_no AND res.line = b.line"
        )
        self._db.execute(
            "DELETE FROM unconfirmed WHERE order_id IN (SELECT order_id FROM by_amount)"
        )

    def _mark_duplicates(self) -> None:
        """Every charge line after the first for one order (or one unknown reference).

        The orders come from ``repeated``: a line matched by amount names an order no other
        line names (:meth:`_match_by_amount`), so it never makes a duplicate."""
        for key, where, repeated in (
            ("order_id", "order_id IS NOT NULL", "SELECT order_id FROM repeated"),
            ("ref", "order_id IS NULL AND ref IS NOT NULL", None),
        ):
            charges = f"kind = 'charge' AND error IS NULL AND {where}"
            repeated = repeated or (
                f"SELECT {key} FROM res WHERE {charges} GROUP BY ALL HAVING count(*) > 1"
            )
            self._db.execute(
                f"""
                UPDATE res SET dup = true FROM (
                    SELECT file_no, line FROM res WHERE {charges} AND {key} IN ({repeated})
                    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY file_no, line) > 1
                ) d
                WHERE res.file_no = d.file_no AND res.line = d.line
                """
            )

    def _span(self) -> tuple[datetime | None, datetime | None]:
        """The time of the reports' first usable line, and the end of their last line's time
        unit: a report written in whole seconds that ends at 12:00:00 covers 12:00:00.999999.

        The unit is the finest one any line's time uses (microsecond, millisecond, second,
        minute, else day): read from the times themselves, in the query that finds the first
        and last, so no line costs anything more.
        """
        if not self._lines:
            return None, None
        if self._spanned is not None and self._spanned[0] == len(self._lines):
            return self._spanned[1]
        row = self._db.execute(
            f"""
            SELECT min(ts), max(ts),
                bool_or(microsecond(ts) % 1000 <> 0), bool_or(microsecond(ts) % 1000000 <> 0),
                bool_or(second(ts) <> 0), bool_or(minute(ts) <> 0 OR hour(ts) <> 0)
            FROM ({self._all_lines()}) WHERE error IS NULL
            """
        ).fetchone()
        span: tuple[datetime | None, datetime | None] = (None, None)
        if row and row[1] is not None:
            first, last, *finer = row
            span = first, end_of_unit(last, _unit(*finer))
        self._spanned = (len(self._lines), span)
        return span

    def _missing_at_provider(self, start: datetime | None, end: datetime | None) -> None:
        """Orders paid in the period (through the provider, when named: ``unconfirmed`` has
        no others) no line confirms."""
        if start is None or end is None:
            start = end = datetime(1, 1, 1, tzinfo=UTC)  # no period: nothing is missing
        self._db.execute(
            """
            CREATE TEMP TABLE missing AS
            SELECT provider_ref AS ref, order_id, amount AS expected_amount,
                currency AS expected_currency, paid_at AS ts
            FROM unconfirmed WHERE paid_at BETWEEN ? AND ?
            """,
            [start, end],
        )

    def _count(self, query: str) -> int:
        row = self._db.execute(query).fetchone()
        return int(row[0]) if row else 0

    def _outcome(self, start: datetime | None, end: datetime | None) -> Outcome:
        counts = dict.fromkeys(c.ALL, 0)
        totals = []
        for cat, cur, n, g, f in self._db.execute(
            "SELECT category, COALESCE(currency, expected_currency), count(*), "
            "COALESCE(sum(gross), sum(expected_amount)), COALESCE(sum(fee), 0) "
            "FROM results GROUP BY ALL ORDER BY 1, 2"
        ).fetchall():
            totals.append(Total(str(cat), str(cur), int(n), int(g), int(f), int(g) - int(f)))
            counts[str(cat)] += int(n)
        errors = [
            LineError(self._files[int(f)], int(line), str(message))
            for f, line, message in self._db.execute(
                "SELECT file_no, line, message FROM line_errors UNION ALL "
                "SELECT file_no, line, error FROM res WHERE error IS NOT NULL "
                "ORDER BY file_no, line"
            ).fetchall()
        ]
        per_file = dict.fromkeys(range(len(self._files)), 0)
        for f, n in self._db.execute(
            "SELECT file_no, count(*) FROM (SELECT file_no FROM res UNION ALL "
            "SELECT file_no FROM line_errors) GROUP BY file_no"
        ).fetchall():
            per_file[int(f)] = int(n)
        row = self._db.execute("SELECT count(*) FROM res").fetchone()
        return Outcome(
            files=list(self._files),
            counts=counts,
            totals=totals,
            errors=errors,
            period_from=start,
            period_to=end,
            lines=int(row[0]) if row else 0,
            file_lines={self._files[f]: n for f, n in per_file.items()},
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

    def copy_results(
        self, path: Path, *, categories: frozenset[str] = c.EXCEPTIONS, json: bool = False
    ) -> int:
        """Write the results of ``categories`` to ``path`` (CSV with a header, or a JSON
        array) straight from DuckDB; return how many. In CSV, text that came from a report
        (references, file names) is neutralised for spreadsheets (:mod:`.cells`)."""
        names = ", ".join(literal(cat) for cat in sorted(categories))
        cell = (lambda text: text) if json else (lambda text: f"og_cell({text})")
        # The file's name from a list, not a join: the join would come before the filter.
        files = ", ".join(literal(str(name if json else neutralise(name))) for name in self._files)
        file = f"[{files}][r.file_no + 1]" if files else "CAST(NULL AS VARCHAR)"
        query = (
            f"SELECT r.category, {file} AS file, r.line, {cell('r.order_id')} AS order_id, "
            f"{cell('r.ref')} AS provider_ref, {cell('r.order_ref')} AS order_ref, "
            "r.gross AS amount, r.currency, r.expected_amount, r.expected_currency, "
            f"r.fee, r.via, {_UTC_TEXT.format('r.ts')} AS at, CAST(NULL AS VARCHAR) AS error "
            f"FROM results r WHERE r.category IN ({names}) "
            "ORDER BY r.file_no NULLS LAST, r.line, r.order_id"
        )
        options = "FORMAT JSON, ARRAY true" if json else "FORMAT CSV, HEADER true"
        row = self._db.execute(f"COPY ({query}) TO {literal(str(path))} ({options})").fetchone()
        return int(row[0]) if row else 0

    def explained(self, earlier: list[Unexplained], *, paid: Collection[str] = ()) -> list[str]:
        """The ids of the ``earlier`` exceptions this run explains (after :meth:`match`):

        - an order missing at the provider, when a charge line of this run names it;
        - an amount or currency mismatch, when a line confirms the order as it is;
        - an orphan charge, when a line confirms it as an order's payment, or its reference
          is one of ``paid`` (the references an attempt now has as a payment, read from
          storage by the caller: the sweep recovered its order), or a line refunds it;
        - a duplicate charge, when a line refunds that charge's reference, for its amount.

        Read with two joins over the lines, only when applying: matching pays nothing for it.
        """
        if not earlier:
            return []
        columns = ("id", "category", "order_id", "provider_ref", "amount")
        self._db.execute(
            "CREATE OR REPLACE TEMP TABLE earlier AS SELECT "
            + ", ".join(f"unnest(${n + 1}) AS {name}" for n, name in enumerate(columns)),
            [[getattr(e, name) for e in earlier] for name in columns],
        )
        rows = self._db.execute(
            f"""
            SELECT e.id FROM earlier e JOIN results r ON r.order_id = e.order_id
            WHERE r.file_no IS NOT NULL AND (
                (e.category = '{c.MISSING_AT_PROVIDER}' AND r.kind = 'charge')
                OR (e.category IN ('{c.AMOUNT_MISMATCH}', '{c.CURRENCY_MISMATCH}')
                    AND r.category = '{c.MATCHED}'))
            UNION
            SELECT e.id FROM earlier e JOIN results r ON r.ref = e.provider_ref
            WHERE r.file_no IS NOT NULL AND (
                (e.category = '{c.MISSING_IN_ORDERS}'
                    AND (r.category = '{c.MATCHED}' OR r.kind = 'refund'))
                OR (e.category = '{c.DUPLICATE}' AND r.kind = 'refund' AND -r.gross = e.amount))
            UNION
            SELECT e.id FROM earlier e
            WHERE e.category = '{c.MISSING_IN_ORDERS}' AND list_contains(?, e.provider_ref)
            ORDER BY 1
            """,
            [sorted(paid)],
        ).fetchall()
        return [str(row[0]) for row in rows]

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


#: How much further the storage read reaches on each side of the times the engine keeps
#: (:meth:`Engine.scope`, :meth:`Engine.candidates`). Both sides compare times to the
#: microsecond (PostgreSQL's timestamps, SQLite's fixed-width UTC text, DuckDB's parse of
#: the export): a minute only guards against a rounding nobody has seen.
SCOPE_MARGIN = timedelta(minutes=1)

#: The units a report's times can be written in, finest first (see :meth:`Engine._span`).
UNITS = {
    "microsecond": timedelta(microseconds=1),
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "day": timedelta(days=1),
}


def _unit(
    micros: bool | None, millis: bool | None, seconds: bool | None, minutes: bool | None
) -> str:
    """The finest unit a set of times uses, from whether any has micro-, milli-, whole
    seconds or minutes (or hours) that are not zero."""
    for used, unit in (
        (micros, "microsecond"),
        (millis, "millisecond"),
        (seconds, "second"),
        (minutes, "minute"),
    ):
        if used:
            return unit
    return "day"


def end_of_unit(at: datetime, unit: str) -> datetime:
    """The last microsecond of the ``unit`` that starts at ``at`` (``at`` itself for
    microseconds): 12:00:00 in seconds ends at 12:00:00.999999."""
    return at + UNITS[unit] - UNITS["microsecond"]


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(a, b) if a and b else a or b


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a and b else a or b


def _read(path: Path, columns: str) -> str:
    """A scan of one of the order exports, with its known columns."""
    return (
        f"read_csv({literal(str(path))}, header = true, auto_detect = false, columns = {columns})"
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


__all__ = ["Engine", "EngineOptions", "Outcome", "Result", "Total"]
