"""The queries behind ``/metrics``, ``/readyz``, ``orderguard doctor`` and the console's
dashboard (:class:`~orderguard.storage.ports.OpsStats`): what the database says about the
orders, the janitor's backlog, the webhook inbox and the workers.

Read-only, aggregate queries (one round trip each) on either dialect.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from orderguard.domain.states import TERMINAL_ORDER_STATES, OrderState
from orderguard.domain.stuck import STUCK_STATES, stuck_horizon
from orderguard.storage.budget import ServerRoom, server_room
from orderguard.storage.database import Connection, Database, Row, to_datetime, transaction
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
        postgres = self._db.dialect == "postgresql"
        if postgres:
            await self._fold()
        async with transaction(self._db, write=False) as conn:
            by_state = await self._by_state(conn)
            open_by_age, oldest = await _open_orders(conn, now)
            stuck = await _stuck(conn, stuck_horizon(now=now))
            flagged = await _flagged(conn)
            backlog, lag = await _janitor(conn, now, watched, shortest_wait)
            webhooks = await (_webhooks_pg(conn) if postgres else _webhooks(conn))
            row = await conn.fetchone("SELECT MAX(seen_at) AS seen FROM worker_heartbeats")
        return DatabaseStats(
            now=now,
            orders_by_state=by_state,
            open_by_age=open_by_age,
            oldest_open=oldest,
            stuck_by_state=stuck,
            flagged_by_reason=flagged,
            janitor_backlog=backlog,
            janitor_lag=lag,
            webhooks=webhooks,
            last_heartbeat=to_datetime(row["seen"]) if row else None,
        )

    async def _fold(self) -> None:
        """Fold the webhook ledger; best effort: unfolded, its sums are the same (a
        read-only standby cannot fold, and must still answer)."""
        try:
            async with transaction(self._db) as conn:
                await _fold_tallies(conn)
        except StorageError:
            return

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


async def _stuck(conn: Connection, since: datetime) -> dict[str, int]:
    """Orders in each stuck state unchanged since ``since`` (every stuck state listed)."""
    rows = await conn.fetchall(
        f"SELECT state, COUNT(*) AS n FROM orders WHERE state IN ({_STUCK_IN}) "
        "AND updated_at < :since GROUP BY state",
        {**_STUCK, "since": since},
    )
    found = {str(r["state"]): int(r["n"]) for r in rows}
    return {str(state): found.get(str(state), 0) for state in sorted(STUCK_STATES)}


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


async def _fold_tallies(conn: Connection) -> None:
    """Fold the webhook ledger's rows into one per provider (PostgreSQL, migration 15).

    Concurrent folds are safe: each deletes the rows it sees (a row another fold deleted
    first is skipped) and inserts their sum, so the totals never change.
    """
    await conn.execute(
        "WITH gone AS (DELETE FROM webhook_tallies RETURNING *) "
        "INSERT INTO webhook_tallies (provider, received, processed, attempts) "
        "SELECT provider, SUM(received), SUM(processed), SUM(attempts) FROM gone "
        "GROUP BY provider"
    )


async def _webhooks_pg(conn: Connection) -> dict[str, WebhookTotals]:
    """The inbox's totals from the ledger, its backlog from the unprocessed rows (few, by
    the partial index ``webhook_events_pending``)."""
    totals = await conn.fetchall(
        "SELECT provider, SUM(received) AS received, SUM(processed) AS processed, "
        "SUM(attempts) AS attempts FROM webhook_tallies GROUP BY provider"
    )
    backlog = await conn.fetchall(
        "SELECT provider, "
        "SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END) AS failing, "
        "MIN(received_at) AS oldest FROM webhook_events WHERE processed_at IS NULL "
        "GROUP BY provider"
    )
    waiting = {str(r["provider"]): r for r in backlog}
    found = {}
    for r in totals:
        processed = int(r["processed"] or 0)
        late = waiting.get(str(r["provider"]))
        found[str(r["provider"])] = WebhookTotals(
            received=int(r["received"] or 0),
            processed=processed,
            failures=max(int(r["attempts"] or 0) - processed, 0),
            failing=int(late["failing"] or 0) if late else 0,
            oldest_unprocessed=to_datetime(late["oldest"]) if late else None,
        )
    return found


def _in(prefix: str, values: tuple[str, ...] | list[str]) -> tuple[str, dict[str, str]]:
    names = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{n}" for n in names), names


async def _open_orders(
    conn: Connection, now: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, datetime]]:
    states, params = _in("s", [str(s) for s in OPEN_STATES])
    columns, lower = [], None
    for index, (_, upper) in enumerate(AGE_BUCKETS):
        conditions = []
        if upper is not None:
            params[f"u{index}"] = now - upper  # type: ignore[assignment]
            conditions.append(f"created_at > :u{index}")
        if lower is not None:
            conditions.append(f"created_at <= :u{index - 1}")
        columns.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END) AS b{index}")
        lower = upper
    rows = await conn.fetchall(
        f"SELECT state, {', '.join(columns)}, "
        f"MIN(CASE WHEN NOT {HAS_OPEN_FLAG} THEN created_at END) AS oldest "
        f"FROM orders WHERE state IN ({states}) GROUP BY state",
        params,
    )
    by_age: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    for row in rows:
        state = str(row["state"])
        by_age[state] = {label: int(row[f"b{i}"] or 0) for i, (label, _) in enumerate(AGE_BUCKETS)}
        first = to_datetime(row["oldest"])
        if first is not None:
            oldest[state] = first
    return by_age, oldest


async def _flagged(conn: Connection) -> dict[str, int]:
    """Orders with an open flag, by the flag's reason (an order counts once per reason)."""
    rows = await conn.fetchall(
        "SELECT reason, COUNT(*) AS n FROM order_flags WHERE cleared_at IS NULL GROUP BY reason"
    )
    return {str(r["reason"]): int(r["n"]) for r in rows}


async def _janitor(
    conn: Connection, now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
) -> tuple[int, timedelta]:
    if not watched:
        return 0, timedelta(0)
    states, params = _in("s", sorted(str(s) for s in watched))
    row = await conn.fetchone(
        "SELECT COUNT(*) AS n, "
        "MIN(CASE WHEN next_check_at IS NOT NULL THEN next_check_at END) AS next_due, "
        "MIN(CASE WHEN next_check_at IS NULL THEN last_checked_at END) AS first_due "
        f"FROM orders WHERE state IN ({states}) "
        "AND (next_check_at <= :now OR (next_check_at IS NULL AND last_checked_at <= :first))",
        {**params, "now": now, "first": now - shortest_wait},
    )
    if row is None or not row["n"]:
        return 0, timedelta(0)
    due = [to_datetime(row["next_due"])]
    first = to_datetime(row["first_due"])
    due.append(first + shortest_wait if first is not None else None)
    earliest = min(d for d in due if d is not None)
    return int(row["n"]), max(now - earliest, timedelta(0))


async def _webhooks(conn: Connection) -> dict[str, WebhookTotals]:
    rows = await conn.fetchall(
        "SELECT provider, COUNT(*) AS received, "
        "SUM(CASE WHEN processed_at IS NOT NULL THEN 1 ELSE 0 END) AS processed, "
        "SUM(attempts) AS attempts, "
        "SUM(CASE WHEN processed_at IS NULL AND last_error IS NOT NULL THEN 1 ELSE 0 END) "
        "AS failing, "
        "MIN(CASE WHEN processed_at IS NULL THEN received_at END) AS oldest "
        "FROM webhook_events GROUP BY provider"
    )
    totals = {}
    for r in rows:
        processed = int(r["processed"] or 0)
        totals[str(r["provider"])] = WebhookTotals(
            received=int(r["received"]),
            processed=processed,
            failures=max(int(r["attempts"] or 0) - processed, 0),
            failing=int(r["failing"] or 0),
            oldest_unprocessed=to_datetime(r["oldest"]),
        )
    return totals


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
