"""The outbox relay's bookkeeping in SQL: deliveries per sink, attempts, leases.

:class:`SqlOutboxRepository` implements :class:`~orderguard.storage.ports.OutboxRepository`
on the connection of one unit of work. Deliveries are created lazily: for each sink the relay
copies the events it has not yet considered (above the sink's ``floor_seq``) into
``outbox_deliveries``, then claims due ones with a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), never one whose order has an earlier event still pending at that sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orderguard.domain.delivery import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Outcome,
)
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.storage import retention
from orderguard.storage.database import (
    Connection,
    Row,
    must_datetime,
    to_datetime,
)
from orderguard.storage.orders import event_from_row
from orderguard.storage.ports import OUTBOX_SETTLE, EventsPruned, OutboxPruned, Undelivered

__all__ = ["SETTLE", "SqlOutboxRepository", "Undelivered"]

#: Longest a transaction that writes an event may stay open (see ``OUTBOX_SETTLE``).
SETTLE = OUTBOX_SETTLE

_DELIVERY_COLUMNS = """
    d.id AS d_id, d.sink, d.state, d.attempts, d.next_attempt_at, d.last_error,
    d.delivered_at, d.dead_at, o.id, o.order_id, o.type, o.payload, o.created_at
"""


class SqlOutboxRepository:
    """Deliveries of outbox events to sinks, in one transaction."""

    def __init__(self, conn: Connection, *, lock_clause: str, skip_locked: str) -> None:
        self._conn = conn
        self._lock, self._skip_locked = lock_clause, skip_locked

    async def enqueue(
        self,
        sink: str,
        *,
        types: frozenset[EventType] | None,
        since: datetime,
        now: datetime,
        batch: int,
    ) -> int:
        conn = self._conn
        await conn.execute(
            "INSERT INTO outbox_sinks (sink, since, floor_seq) VALUES (:sink, :since, 0) "
            "ON CONFLICT (sink) DO NOTHING",
            {"sink": sink, "since": since},
        )
        row = await conn.fetchone(
            f"SELECT since, floor_seq FROM outbox_sinks WHERE sink = :sink{self._lock}",
            {"sink": sink},
        )
        assert row is not None
        floor, start = int(row["floor_seq"]), must_datetime(row["since"])
        created = await self._copy(sink, types, floor=floor, since=start, batch=batch)
        if created < batch:
            await self._raise_floor(sink, floor=floor, settled=now - SETTLE)
        return created

    async def _copy(
        self,
        sink: str,
        types: frozenset[EventType] | None,
        *,
        floor: int,
        since: datetime,
        batch: int,
    ) -> int:
        names, clause = _type_filter(types)
        rows = await self._conn.fetchall(
            f"""
            INSERT INTO outbox_deliveries (event_id, sink, order_id, event_seq, state,
                attempts, next_attempt_at)
            SELECT o.id, :sink, o.order_id, o.seq, 'pending', 0, o.created_at FROM outbox o
            WHERE o.seq > :floor AND o.created_at >= :since{clause}
              AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d
                              WHERE d.event_id = o.id AND d.sink = :sink)
            ORDER BY o.seq LIMIT :batch
            ON CONFLICT (event_id, sink) DO NOTHING
            RETURNING id
            """,
            {**names, "sink": sink, "floor": floor, "since": since, "batch": batch},
        )
        return len(rows)

    async def _raise_floor(self, sink: str, *, floor: int, settled: datetime) -> None:
        row = await self._conn.fetchone(
            "SELECT MAX(seq) AS top FROM outbox WHERE seq > :floor AND created_at < :settled",
            {"floor": floor, "settled": settled},
        )
        if row and row["top"] is not None:
            await self._conn.execute(
                "UPDATE outbox_sinks SET floor_seq = :top WHERE sink = :sink",
                {"top": int(row["top"]), "sink": sink},
            )

    async def claim(
        self, sink: str, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Delivery]:
        claimed = await self._conn.fetchall(
            f"""
            UPDATE outbox_deliveries SET lease_owner = :owner, lease_until = :until
            WHERE id IN (
                SELECT d.id FROM outbox_deliveries d
                WHERE d.sink = :sink AND d.state = 'pending' AND d.next_attempt_at <= :now
                  AND (d.lease_until IS NULL OR d.lease_until < :now)
                  AND NOT EXISTS (
                      SELECT 1 FROM outbox_deliveries e
                      WHERE e.sink = d.sink AND e.order_id = d.order_id
                        AND e.state = 'pending' AND e.event_seq < d.event_seq)
                ORDER BY d.event_seq LIMIT :limit{self._skip_locked}
            )
            RETURNING id
            """,
            {"sink": sink, "owner": owner, "now": now, "until": until, "limit": limit},
        )
        rows = await _select(self._conn, "d.id IN ({ids})", [int(r["id"]) for r in claimed])
        return [_delivery(row) for row in rows]

    async def delivered(self, delivery: Delivery, *, attempt: DeliveryAttempt) -> None:
        await self._conn.execute(
            "UPDATE outbox_deliveries SET state = 'delivered', attempts = attempts + 1, "
            "delivered_at = :at, last_error = NULL, lease_owner = NULL, "
            "lease_until = NULL WHERE id = :id",
            {"id": delivery.id, "at": attempt.at},
        )
        await _record(self._conn, attempt)

    async def failed(
        self, delivery: Delivery, *, attempt: DeliveryAttempt, retry_at: datetime | None
    ) -> None:
        state = DeliveryState.PENDING if retry_at is not None else DeliveryState.DEAD
        await self._conn.execute(
            "UPDATE outbox_deliveries SET state = :state, attempts = attempts + 1, "
            "last_error = :error, next_attempt_at = COALESCE(:retry_at, next_attempt_at), "
            "dead_at = :dead_at, lease_owner = NULL, lease_until = NULL WHERE id = :id",
            {
                "id": delivery.id,
                "state": str(state),
                "error": (attempt.error or "")[:2000],
                "retry_at": retry_at,
                "dead_at": attempt.at if retry_at is None else None,
            },
        )
        await _record(self._conn, attempt)

    async def release(self, deliveries: Sequence[Delivery], *, owner: str) -> None:
        ids = [d.id for d in deliveries]
        if not ids:
            return
        names = {f"i{n}": i for n, i in enumerate(ids)}
        await self._conn.execute(
            "UPDATE outbox_deliveries SET lease_owner = NULL, lease_until = NULL "
            f"WHERE lease_owner = :owner AND id IN ({', '.join(':' + k for k in names)})",
            {**names, "owner": owner},
        )

    async def deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        sink: str | None = None,
        order_id: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        where, params = ["1 = 1"], {"limit": limit}
        for column, value in (
            ("d.state", state),
            ("d.sink", sink),
            ("d.order_id", order_id),
            ("d.event_id", event_id),
        ):
            if value is not None:
                key = column.split(".")[1]
                where.append(f"{column} = :{key}")
                params[key] = str(value)  # type: ignore[assignment]
        rows = await self._conn.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox_deliveries d "
            f"JOIN outbox o ON o.id = d.event_id WHERE {' AND '.join(where)} "
            "ORDER BY d.event_seq DESC, d.sink LIMIT :limit",
            params,
        )
        return [_delivery(row) for row in rows]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        row = await self._conn.fetchone(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox_deliveries d "
            "JOIN outbox o ON o.id = d.event_id WHERE d.id = :id",
            {"id": delivery_id},
        )
        return _delivery(row) if row else None

    async def attempts(self, event_id: str) -> list[DeliveryAttempt]:
        rows = await self._conn.fetchall(
            "SELECT * FROM outbox_attempts WHERE event_id = :id ORDER BY id", {"id": event_id}
        )
        return [_attempt(row) for row in rows]

    async def event(self, event_id: str) -> OutboxEvent | None:
        row = await self._conn.fetchone("SELECT * FROM outbox WHERE id = :id", {"id": event_id})
        return event_from_row(row) if row else None

    async def replay(
        self, *, now: datetime, event_id: str | None = None, sink: str | None = None
    ) -> int:
        if event_id is not None and sink is not None:
            await _ensure_delivery(self._conn, event_id, sink, now=now)
        where, params = _replay_filter(event_id, sink)
        return await self._conn.execute(
            "UPDATE outbox_deliveries SET state = 'pending', attempts = 0, "
            "next_attempt_at = :now, dead_at = NULL, delivered_at = NULL, "
            f"lease_owner = NULL, lease_until = NULL WHERE {where}",
            {**params, "now": now},
        )

    async def undelivered(
        self, sink: str, *, types: frozenset[EventType] | None, since: datetime
    ) -> Undelivered:
        names, clause = _type_filter(types)
        conn = self._conn
        row = await conn.fetchone(
            "SELECT since, floor_seq FROM outbox_sinks WHERE sink = :sink", {"sink": sink}
        )
        floor = int(row["floor_seq"]) if row else 0
        start = must_datetime(row["since"]) if row else since
        # above the floor: events not picked up yet, and those picked up but pending
        above = await conn.fetchone(
            f"""
            SELECT COUNT(*) AS n, MIN(o.created_at) AS oldest FROM outbox o
            WHERE o.seq > :floor AND o.created_at >= :since{clause}
              AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id
                              AND d.sink = :sink AND d.state <> 'pending')
            """,
            {**names, "sink": sink, "floor": floor, "since": start},
        )
        # the rest (at or below the floor, or replayed): only pending deliveries wait
        below = await conn.fetchone(
            f"""
            SELECT COUNT(*) AS n, MIN(o.created_at) AS oldest FROM outbox_deliveries d
            JOIN outbox o ON o.id = d.event_id
            WHERE d.sink = :sink AND d.state = 'pending'
              AND NOT (o.seq > :floor AND o.created_at >= :since{clause})
            """,
            {**names, "sink": sink, "floor": floor, "since": start},
        )
        parts = [r for r in (above, below) if r]
        times = [t for t in (to_datetime(r["oldest"]) for r in parts) if t is not None]
        return Undelivered(sum(int(r["n"]) for r in parts), min(times, default=None))

    async def dead_counts(self) -> dict[str, int]:
        rows = await self._conn.fetchall(
            "SELECT sink, COUNT(*) AS n FROM outbox_deliveries WHERE state = 'dead' GROUP BY sink"
        )
        return {str(r["sink"]): int(r["n"]) for r in rows}

    async def prune(self, delivered_before: datetime, *, limit: int) -> OutboxPruned:
        return await retention.prune_outbox(
            self._conn, delivered_before, limit=limit, skip_locked=self._skip_locked
        )

    async def prune_events(
        self, committed_before: datetime, *, after_seq: int, limit: int
    ) -> EventsPruned:
        return await retention.prune_outbox_events(
            self._conn, committed_before, after_seq=after_seq, limit=limit
        )

    async def prunable(self, delivered_before: datetime) -> OutboxPruned:
        return await retention.prunable_outbox(self._conn, delivered_before)


def _type_filter(types: frozenset[EventType] | None) -> tuple[dict[str, str], str]:
    if types is None:
        return {}, ""
    names = {f"t{n}": str(t) for n, t in enumerate(sorted(types))}
    return names, f" AND o.type IN ({', '.join(':' + k for k in names)})"


def _replay_filter(event_id: str | None, sink: str | None) -> tuple[str, dict[str, str]]:
    where, params = [], {}
    if event_id is not None:
        where.append("event_id = :event_id")
        params["event_id"] = event_id
    if sink is not None:
        where.append("sink = :sink")
        params["sink"] = sink
    if event_id is None or sink is None:
        where.append("state = 'dead'")
    return " AND ".join(where), params


async def _ensure_delivery(conn: Connection, event_id: str, sink: str, *, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO outbox_deliveries (event_id, sink, order_id, event_seq, state, attempts, "
        "next_attempt_at) SELECT id, :sink, order_id, seq, 'pending', 0, :now FROM outbox "
        "WHERE id = :id ON CONFLICT (event_id, sink) DO NOTHING",
        {"id": event_id, "sink": sink, "now": now},
    )


async def _select(conn: Connection, where: str, ids: list[int]) -> list[Row]:
    if not ids:
        return []
    names = {f"i{n}": i for n, i in enumerate(ids)}
    sql = (
        f"SELECT {_DELIVERY_COLUMNS} FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id "
        f"WHERE {where.format(ids=', '.join(':' + k for k in names))} ORDER BY d.event_seq"
    )
    return await conn.fetchall(sql, names)


async def _record(conn: Connection, attempt: DeliveryAttempt) -> None:
    await conn.execute(
        "INSERT INTO outbox_attempts (event_id, sink, at, outcome, error, relay, duration_ms) "
        "VALUES (:event_id, :sink, :at, :outcome, :error, :relay, :duration_ms)",
        {
            "event_id": attempt.event_id,
            "sink": attempt.sink,
            "at": attempt.at,
            "outcome": str(attempt.outcome),
            "error": attempt.error[:2000] if attempt.error else None,
            "relay": attempt.relay,
            "duration_ms": attempt.duration_ms,
        },
    )


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=int(row["d_id"]),
        event=event_from_row(row),
        sink=row["sink"],
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=must_datetime(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_at=to_datetime(row["delivered_at"]),
        dead_at=to_datetime(row["dead_at"]),
    )


def _attempt(row: Row) -> DeliveryAttempt:
    return DeliveryAttempt(
        event_id=row["event_id"],
        sink=row["sink"],
        at=must_datetime(row["at"]),
        outcome=Outcome(row["outcome"]),
        error=row["error"],
        relay=row["relay"],
        duration_ms=int(row["duration_ms"]),
    )
