"""The queries behind ``/metrics``, ``/readyz``, ``orderguard doctor`` and the console's
dashboard (:class:`~orderguard.storage.ports.OpsStats`): what the database says about the
orders, the janitor's backlog, the webhook inbox and the workers.

Read-only, aggregate queries (one round trip each) on either dialect.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderguard.domain.states import TERMINAL_ORDER_STATES, OrderState
from orderguard.domain.stuck import STUCK_STATES, stuck_horizon
from orderguard.storage.budget import ServerRoom, server_room
from orderguard.storage.database import (
    Connection,
    Database,
    Row,
    to_datetime,
    transaction,
    utc,
)
from orderguard.storage.errors import StorageError
from orderguard.storage.order_flags import HAS_OPEN_FLAG
from orderguard.storage.ports import (
    AGE_BUCKETS,
    OPEN_STATES,
    ConsoleCounts,
    DatabaseStats,
    WebhookTotals,
)

#: The stuck states as SQL parameters (``domain.stuck``).
_STUCK = {f"k{i}": str(state) for i, state in enumerate(sorted(STUCK_STATES))}
_STUCK_IN = ", ".join(f":{name}" for name in _STUCK)


class SqlOpsStats:
    """:class:`~orderguard.storage.ports.OpsStats` on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: When the webhook ledger may be folded again (after a read-only refusal).
        self._fold_again_at = float("-inf")
        #: Whether the last reading found more than ``ESTIMATE_ABOVE`` orders (PostgreSQL).
        self._large: bool | None = None

    async def ping(self) -> float:
        started = time.perf_counter()
        async with transaction(self._db, write=False) as conn:
            await conn.fetchone("SELECT 1 AS one")
        return time.perf_counter() - started

    async def database_now(self) -> datetime | None:
        if self._db.dialect != "postgresql":
            return None
        async with transaction(self._db, write=False) as conn:
            row = await conn.fetchone("SELECT now() AS now")
        return to_datetime(row["now"]) if row else None

    async def connection_room(self) -> ServerRoom | None:
        return await server_room(self._db)

    async def schema_version(self) -> int:
        async with transaction(self._db, write=False) as conn:
            try:
                row = await conn.fetchone("SELECT MAX(version) AS v FROM schema_migrations")
            except StorageError as exc:
                if "schema_migrations" in str(exc):
                    return 0
                raise
        return int(row["v"]) if row and row["v"] is not None else 0

    async def last_heartbeat(self) -> datetime | None:
        async with transaction(self._db, write=False) as conn:
            row = await conn.fetchone("SELECT MAX(seen_at) AS seen FROM worker_heartbeats")
        return to_datetime(row["seen"]) if row else None

    async def read(
        self, *, now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
    ) -> DatabaseStats:
        if self._db.dialect == "postgresql":
            large = await self._large_table()
            rows = await self._read_pg(_parts(now, watched, shortest_wait, estimate=large))
            self._large = _planned_orders(rows) >= ESTIMATE_ABOVE
        else:
            parts = _parts(now, watched, shortest_wait, estimate=None)
            async with transaction(self._db, write=False) as conn:
                rows = {part.name: await conn.fetchall(part.sql, part.params) for part in parts}
        return _stats(now, rows, shortest_wait)

    async def _large_table(self) -> bool:
        """Whether the orders' final states are estimated (``ESTIMATE_ABOVE``): what the last
        reading's planner estimate said, asked once when this is the first reading. Choosing
        before the statement keeps a count of the whole table out of its plan."""
        if self._large is None:
            async with transaction(self._db, write=False) as conn:
                row = await conn.fetchone(_RELTUPLES)
            self._large = row is not None and int(row["n"]) >= ESTIMATE_ABOVE
        return self._large

    async def _read_pg(self, parts: tuple[_Part, ...]) -> dict[str, list[Row]]:
        """Every part in ONE statement (one round trip with its ``BEGIN``), folding the
        webhook ledger in the same statement. A read-only database (a standby) refuses the
        fold: the statement is then sent without it (the ledger's sums are the same
        unfolded), and the fold is tried again after ``FOLD_RETRY_S``."""
        fold = time.monotonic() >= self._fold_again_at
        try:
            return await self._one_statement(parts, fold=fold)
        except StorageError as exc:
            if not fold or "read-only" not in str(exc):
                raise
        self._fold_again_at = time.monotonic() + FOLD_RETRY_S
        return await self._one_statement(parts, fold=False)

    async def _one_statement(self, parts: tuple[_Part, ...], *, fold: bool) -> dict[str, list[Row]]:
        params: dict[str, object] = {}
        for part in parts:
            params.update(part.params)
        async with transaction(self._db) as conn:
            async with conn.batch():  # BEGIN and the statement in one round trip
                row = await conn.fetchone(_statement(parts, fold=fold), params)
        if row is None:  # pragma: no cover - a SELECT without FROM returns one row
            raise StorageError("the metrics statement returned no row")
        return {part.name: list(row[part.name]) for part in parts}

    async def orders_by_state(self) -> dict[str, int]:
        async with transaction(self._db, write=False) as conn:
            return await self._by_state(conn)

    async def _by_state(self, conn: Connection) -> dict[str, int]:
        if self._db.dialect == "postgresql":
            return await _orders_by_state_pg(conn)
        return await _orders_by_state(conn)

    async def counts(self, *, stuck_since: datetime) -> ConsoleCounts:
        async with transaction(self._db, write=False) as conn:
            flagged = await conn.fetchone(f"SELECT COUNT(*) AS n FROM orders WHERE {HAS_OPEN_FLAG}")
            stuck = await _stuck(conn, stuck_since)
            webhooks = await conn.fetchone(
                "SELECT COUNT(*) AS n FROM webhook_events WHERE processed_at IS NULL"
            )
        return ConsoleCounts(
            flagged=_n(flagged), stuck=sum(stuck.values()), webhook_backlog=_n(webhooks)
        )


def _n(row: Row | None) -> int:
    return int(row["n"]) if row else 0


def _stuck_part(since: datetime) -> _Part:
    return _Part(
        "stuck",
        f"SELECT state, COUNT(*) AS n FROM orders WHERE state IN ({_STUCK_IN}) "
        "AND updated_at < :since GROUP BY state",
        {**_STUCK, "since": since},
    )


def _stuck_counts(rows: list[Row]) -> dict[str, int]:
    """Every stuck state listed, zeros included."""
    found = {str(r["state"]): int(r["n"]) for r in rows}
    return {str(state): found.get(str(state), 0) for state in sorted(STUCK_STATES)}


async def _stuck(conn: Connection, since: datetime) -> dict[str, int]:
    """Orders in each stuck state unchanged since ``since`` (every stuck state listed)."""
    part = _stuck_part(since)
    return _stuck_counts(await conn.fetchall(part.sql, part.params))


async def _orders_by_state(conn: Connection) -> dict[str, int]:
    rows = await conn.fetchall("SELECT state, COUNT(*) AS n FROM orders GROUP BY state")
    return {str(r["state"]): int(r["n"]) for r in rows}


#: Above this many orders (by the planner's estimate), ``orderguard_orders`` for the final
#: states is an estimate on PostgreSQL: counting millions of rows on every scrape is what
#: the gauge must not cost. Below it, and always for the open states, counts are exact.
ESTIMATE_ABOVE = 100_000
_FINAL = {f"f{i}": str(s) for i, s in enumerate(sorted(TERMINAL_ORDER_STATES))}
_OPEN = {f"o{i}": str(s) for i, s in enumerate(OPEN_STATES)}
_OPEN_IN = ", ".join(f":{name}" for name in _OPEN)


async def _orders_by_state_pg(conn: Connection) -> dict[str, int]:
    """Orders by state: open states counted exactly (few rows, by index), final states
    estimated from the planner's statistics once the table is large (see ``ESTIMATE_ABOVE``);
    ANALYZE (autovacuum runs it as the table grows) refreshes them."""
    row = await conn.fetchone(
        "SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass('orders')"
    )
    if row is None or int(row["n"]) < ESTIMATE_ABOVE:
        return await _orders_by_state(conn)
    total = int(row["n"])
    rows = await conn.fetchall(
        f"SELECT state, COUNT(*) AS n FROM orders WHERE state IN ({_OPEN_IN}) GROUP BY state",
        _OPEN,
    )
    counts = {str(r["state"]): int(r["n"]) for r in rows}
    shares = await conn.fetchall(
        "SELECT v.state, v.share FROM pg_stats s, "
        "unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS v(state, share) "
        "WHERE s.schemaname = current_schema() AND s.tablename = 'orders' "
        f"AND s.attname = 'state' AND v.state IN ({', '.join(':' + k for k in _FINAL)})",
        _FINAL,
    )
    for r in shares:
        counts[str(r["state"])] = round(total * float(r["share"]))
    return counts


#: Seconds before a refused fold of the webhook ledger (a read-only database) is tried again.
FOLD_RETRY_S = 60.0

#: Fold the webhook ledger's rows into one per provider (PostgreSQL, migration 15), as the
#: head of the reading's statement. The statement's SELECT reads the snapshot taken before
#: the fold, whose sums are the same. Concurrent folds are safe: each deletes the rows it
#: sees (a row another fold deleted first is skipped) and inserts their sum, so the totals
#: never change.
_FOLD = (
    "WITH gone AS (DELETE FROM webhook_tallies RETURNING *), "
    "folded AS (INSERT INTO webhook_tallies (provider, received, processed, attempts) "
    "SELECT provider, SUM(received), SUM(processed), SUM(attempts) FROM gone "
    "GROUP BY provider) "
)


@dataclass(frozen=True, slots=True)
class _Part:
    """One query of a reading: its rows arrive under ``name``."""

    name: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=32)
def _statement_text(parts: tuple[tuple[str, str], ...], fold: bool) -> str:
    columns = ", ".join(
        f"(SELECT COALESCE(json_agg(q), '[]'::json) FROM ({sql}) q) AS {name}"
        for name, sql in parts
    )
    return f"{_FOLD if fold else ''}SELECT {columns}"


def _statement(parts: tuple[_Part, ...], *, fold: bool) -> str:
    """The parts as the columns of one SELECT, each the JSON array of its rows (built once
    per set of parts, so the server can reuse its prepared plan)."""
    return _statement_text(tuple((p.name, p.sql) for p in parts), fold)


def _parts(
    now: datetime,
    watched: frozenset[OrderState],
    shortest_wait: timedelta,
    *,
    estimate: bool | None,
) -> tuple[_Part, ...]:
    """The queries of one reading (their parameter names never collide). ``estimate``:
    ``None`` on SQLite; on PostgreSQL whether the final states are estimated."""
    exact = _Part("exact_states", "SELECT state, COUNT(*) AS n FROM orders GROUP BY state")
    by_state: tuple[_Part, ...] = (exact,)
    if estimate is not None:
        by_state = (_Part("reltuples", _RELTUPLES),) + (
            (
                _Part("open_states", _OPEN_COUNTS, dict(_OPEN)),
                _Part("final_shares", _FINAL_SHARES, dict(_FINAL)),
            )
            if estimate
            else (exact,)
        )
    webhooks = (
        (_Part("tallies", _TALLIES), _Part("backlog", _BACKLOG))
        if estimate is not None
        else (_Part("inbox", _INBOX),)
    )
    return (
        *by_state,
        _open_orders_part(now),
        _stuck_part(stuck_horizon(now=now)),
        _Part(
            "flagged",
            "SELECT reason, COUNT(*) AS n FROM order_flags WHERE cleared_at IS NULL "
            "GROUP BY reason",
        ),
        *_janitor_parts(now, watched, shortest_wait),
        *webhooks,
        _Part("heartbeat", "SELECT MAX(seen_at) AS seen FROM worker_heartbeats"),
    )


def _stats(now: datetime, rows: dict[str, list[Row]], shortest_wait: timedelta) -> DatabaseStats:
    """A reading from the rows of its parts."""
    open_by_age, oldest = _open_orders(rows["open_orders"])
    backlog, lag = _janitor(rows.get("janitor"), now, shortest_wait)
    heartbeat = rows["heartbeat"]
    return DatabaseStats(
        now=now,
        orders_by_state=_by_state(rows),
        open_by_age=open_by_age,
        oldest_open=oldest,
        stuck_by_state=_stuck_counts(rows["stuck"]),
        flagged_by_reason={str(r["reason"]): int(r["n"]) for r in rows["flagged"]},
        janitor_backlog=backlog,
        janitor_lag=lag,
        webhooks=_webhooks(rows),
        last_heartbeat=_when(heartbeat[0]["seen"]) if heartbeat else None,
    )


def _when(value: Any) -> datetime | None:
    """A timestamp of a row: a ``datetime`` (SQLite's text) or JSON's ISO text, in UTC."""
    found = to_datetime(value)
    return utc(found) if found is not None else None


_RELTUPLES = "SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass('orders')"
_OPEN_COUNTS = f"SELECT state, COUNT(*) AS n FROM orders WHERE state IN ({_OPEN_IN}) GROUP BY state"
_FINAL_SHARES = (
    "SELECT v.state, v.share FROM pg_stats s, "
    "unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS v(state, share) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'orders' "
    f"AND s.attname = 'state' AND v.state IN ({', '.join(':' + k for k in _FINAL)})"
)


def _by_state(rows: dict[str, list[Row]]) -> dict[str, int]:
    """Exact counts, or (PostgreSQL, more than ``ESTIMATE_ABOVE`` orders by the planner's
    estimate) open states exact and final states estimated."""
    if "exact_states" in rows:
        return {str(r["state"]): int(r["n"]) for r in rows["exact_states"]}
    total = max(_planned_orders(rows), 0)
    counts = {str(r["state"]): int(r["n"]) for r in rows["open_states"]}
    for r in rows["final_shares"]:
        counts[str(r["state"])] = round(total * float(r["share"]))
    return counts


def _planned_orders(rows: dict[str, list[Row]]) -> int:
    """The planner's estimate of the orders (-1: never analyzed)."""
    found = rows.get("reltuples")
    return int(found[0]["n"]) if found else -1


_TALLIES = (
    "SELECT provider, SUM(received) AS received, SUM(processed) AS processed, "
    "SUM(attempts) AS attempts FROM webhook_tallies GROUP BY provider"
)
#: The inbox's backlog from the unprocessed rows (few, by ``webhook_events_pending``).
_BACKLOG = (
    "SELECT provider, "
    "SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END) AS failing, "
    "MIN(received_at) AS oldest FROM webhook_events WHERE processed_at IS NULL "
    "GROUP BY provider"
)
#: SQLite: the whole inbox counted (no ledger).
_INBOX = (
    "SELECT provider, COUNT(*) AS received, "
    "SUM(CASE WHEN processed_at IS NOT NULL THEN 1 ELSE 0 END) AS processed, "
    "SUM(attempts) AS attempts, "
    "SUM(CASE WHEN processed_at IS NULL AND last_error IS NOT NULL THEN 1 ELSE 0 END) "
    "AS failing, "
    "MIN(CASE WHEN processed_at IS NULL THEN received_at END) AS oldest "
    "FROM webhook_events GROUP BY provider"
)


def _webhooks(rows: dict[str, list[Row]]) -> dict[str, WebhookTotals]:
    """Totals per provider: from the ledger and the backlog (PostgreSQL) or the inbox."""
    if "inbox" in rows:
        totals, waiting = rows["inbox"], {str(r["provider"]): r for r in rows["inbox"]}
    else:
        totals, waiting = rows["tallies"], {str(r["provider"]): r for r in rows["backlog"]}
    found = {}
    for r in totals:
        processed = int(r["processed"] or 0)
        late = waiting.get(str(r["provider"]))
        found[str(r["provider"])] = WebhookTotals(
            received=int(r["received"] or 0),
            processed=processed,
            failures=max(int(r["attempts"] or 0) - processed, 0),
            failing=int(late["failing"] or 0) if late else 0,
            oldest_unprocessed=_when(late["oldest"]) if late else None,
        )
    return found


def _in(prefix: str, values: tuple[str, ...] | list[str]) -> tuple[str, dict[str, str]]:
    names = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{n}" for n in names), names


def _open_orders_part(now: datetime) -> _Part:
    states, names = _in("s", [str(s) for s in OPEN_STATES])
    params: dict[str, Any] = dict(names)
    columns, lower = [], None
    for index, (_, upper) in enumerate(AGE_BUCKETS):
        conditions = []
        if upper is not None:
            params[f"u{index}"] = now - upper
            conditions.append(f"created_at > :u{index}")
        if lower is not None:
            conditions.append(f"created_at <= :u{index - 1}")
        columns.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END) AS b{index}")
        lower = upper
    return _Part(
        "open_orders",
        f"SELECT state, {', '.join(columns)}, "
        f"MIN(CASE WHEN NOT {HAS_OPEN_FLAG} THEN created_at END) AS oldest "
        f"FROM orders WHERE state IN ({states}) GROUP BY state",
        params,
    )


def _open_orders(rows: list[Row]) -> tuple[dict[str, dict[str, int]], dict[str, datetime]]:
    by_age: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    for row in rows:
        state = str(row["state"])
        by_age[state] = {label: int(row[f"b{i}"] or 0) for i, (label, _) in enumerate(AGE_BUCKETS)}
        first = _when(row["oldest"])
        if first is not None:
            oldest[state] = first
    return by_age, oldest


def _janitor_parts(
    now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
) -> tuple[_Part, ...]:
    if not watched:
        return ()
    states, names = _in("j", sorted(str(s) for s in watched))
    return (
        _Part(
            "janitor",
            "SELECT COUNT(*) AS n, "
            "MIN(CASE WHEN next_check_at IS NOT NULL THEN next_check_at END) AS next_due, "
            "MIN(CASE WHEN next_check_at IS NULL THEN last_checked_at END) AS first_due "
            f"FROM orders WHERE state IN ({states}) AND (next_check_at <= :now "
            "OR (next_check_at IS NULL AND last_checked_at <= :first))",
            {**names, "now": now, "first": now - shortest_wait},
        ),
    )


def _janitor(
    rows: list[Row] | None, now: datetime, shortest_wait: timedelta
) -> tuple[int, timedelta]:
    if not rows or not rows[0]["n"]:
        return 0, timedelta(0)
    row = rows[0]
    due = [_when(row["next_due"])]
    first = _when(row["first_due"])
    due.append(first + shortest_wait if first is not None else None)
    earliest = min(d for d in due if d is not None)
    return int(row["n"]), max(now - earliest, timedelta(0))


async def probe_postgres(url: str, *, timeout_s: int = 5) -> str | None:
    """Why a PostgreSQL server at ``url`` refuses a connection (``None``: it accepts one).

    One plain connection, so a dead server is reported at once instead of after the
    pool's patience runs out.
    """
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=timeout_s)
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    await conn.close()
    return None
