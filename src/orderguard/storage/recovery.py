"""Leases and heartbeats, the webhook inbox and sweep findings in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from orderguard.domain.states import OrderState
from orderguard.storage import retention
from orderguard.storage.database import Connection, Row, must_datetime, to_datetime
from orderguard.storage.ports import SweepFinding, WebhookRecord

#: A refund whose lookup at the provider is due (``{alias}``: the refunds table's alias).
_DUE_REFUND = (
    "{alias}.state = 'pending' AND ({alias}.next_check_at <= :now "
    "OR ({alias}.next_check_at IS NULL AND {alias}.created_at <= :first))"
)


async def claim_due(
    conn: Connection,
    states: frozenset[OrderState],
    *,
    now: datetime,
    first_due_before: datetime,
    owner: str,
    until: datetime,
    limit: int,
    skip_locked: str,
    returning: str,
) -> list[Row]:
    """Lease the due orders nobody holds (``LeaseRepository.claim_due_orders``) in one
    statement, returning ``returning`` of each leased row: ``id`` for the ids, ``*`` for
    the whole rows (``OrderRepository.claim_due`` builds the orders from them).

    Which orders are due is said with the column of ``orders_janitor_due`` (migration 17),
    ``due_at = COALESCE(next_check_at, last_checked_at)``, so PostgreSQL reads that index
    in the order of the ``ORDER BY`` from its first row and stops after ``limit`` due rows:

    - ``due_at <= CASE WHEN next_check_at IS NULL THEN :first ELSE :now END`` is exactly
      "``next_check_at <= now``, or no ``next_check_at`` and ``last_checked_at <=
      first_due_before``" (``due_at`` is then ``next_check_at``, resp.
      ``last_checked_at``; with neither, ``due_at`` is NULL and the row is not due);
    - ``due_at <= :due`` (the later of ``now`` and ``first_due_before``) follows from it
      and bounds the index range: when nothing is due, nothing more is read.

    Written as ``next_check_at <= :now OR (next_check_at IS NULL AND ...)``, the planner
    multiplies that condition's selectivity over all orders (the share with a next check)
    by the states' (nearly the same orders) and expects almost no row: on 10 M orders it
    read every order in motion by ``orders_changed`` and sorted them; with ``due_at <=
    :due`` merely added, it reads every due order (bitmap) and sorts them. The ``CASE``,
    which it cannot estimate from the columns, keeps it from expecting fewer rows than
    ``limit``. ``tests/integration/test_growth_plans.py`` checks the plan.
    """
    names = {f"s{i}": str(state) for i, state in enumerate(sorted(states))}
    placeholders = ", ".join(f":{name}" for name in names)
    return await conn.fetchall(
        f"""
        UPDATE orders SET lease_owner = :owner, lease_until = :until
        WHERE id IN (
            SELECT id FROM orders
            WHERE state IN ({placeholders})
              AND COALESCE(next_check_at, last_checked_at) <= :due
              AND COALESCE(next_check_at, last_checked_at)
                  <= CASE WHEN next_check_at IS NULL THEN :first ELSE :now END
              AND (lease_until IS NULL OR lease_until < :now)
            ORDER BY COALESCE(next_check_at, last_checked_at)
            LIMIT :limit{skip_locked}
        )
        RETURNING {returning}
        """,
        {
            **names,
            "owner": owner,
            "until": until,
            "now": now,
            "first": first_due_before,
            "due": max(now, first_due_before),
            "limit": limit,
        },
    )


class SqlLeaseRepository:
    """Leases on orders, and worker heartbeats."""

    def __init__(self, conn: Connection, *, skip_locked: str) -> None:
        self._conn = conn
        self._skip_locked = skip_locked

    async def claim_due_orders(
        self,
        states: frozenset[OrderState],
        *,
        now: datetime,
        first_due_before: datetime,
        owner: str,
        until: datetime,
        limit: int,
    ) -> list[str]:
        rows = await claim_due(
            self._conn,
            states,
            now=now,
            first_due_before=first_due_before,
            owner=owner,
            until=until,
            limit=limit,
            skip_locked=self._skip_locked,
            returning="id",
        )
        return sorted(str(row["id"]) for row in rows)

    async def claim_refund_checks(
        self, *, now: datetime, first_due_before: datetime, owner: str, until: datetime, limit: int
    ) -> list[str]:
        due = _DUE_REFUND.format(alias="r")
        rows = await self._conn.fetchall(
            f"""
            UPDATE orders SET lease_owner = :owner, lease_until = :until
            WHERE id IN (
                SELECT id FROM orders
                WHERE id IN (SELECT r.order_id FROM refunds r WHERE {due})
                  AND (lease_until IS NULL OR lease_until < :now)
                ORDER BY (
                    SELECT MIN(COALESCE(r.next_check_at, r.created_at)) FROM refunds r
                    WHERE r.order_id = orders.id AND {due}
                ), id
                LIMIT :limit{self._skip_locked}
            )
            RETURNING id
            """,
            {"owner": owner, "until": until, "now": now, "first": first_due_before, "limit": limit},
        )
        return sorted(str(row["id"]) for row in rows)

    async def release(self, order_id: str, owner: str) -> None:
        await self._conn.execute(
            "UPDATE orders SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = :id AND lease_owner = :owner",
            {"id": order_id, "owner": owner},
        )

    async def release_many(self, order_ids: Sequence[str], owner: str) -> None:
        if not order_ids:
            return
        ids = {f"id{i}": order_id for i, order_id in enumerate(dict.fromkeys(order_ids))}
        names = ", ".join(f":{name}" for name in ids)
        await self._conn.execute(
            "UPDATE orders SET lease_owner = NULL, lease_until = NULL "
            f"WHERE id IN ({names}) AND lease_owner = :owner",
            {**ids, "owner": owner},
        )

    async def beat(self, worker_id: str, *, started_at: datetime, now: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO worker_heartbeats (worker_id, started_at, seen_at) "
            "VALUES (:id, :started, :now) "
            "ON CONFLICT (worker_id) DO UPDATE SET seen_at = excluded.seen_at",
            {"id": worker_id, "started": started_at, "now": now},
        )

    async def last_beat(self, *, other_than: str | None = None) -> datetime | None:
        row = await self._conn.fetchone(
            "SELECT MAX(seen_at) AS seen FROM worker_heartbeats WHERE worker_id <> :me",
            {"me": other_than or ""},
        )
        return to_datetime(row["seen"]) if row else None

    async def forget(self, worker_id: str) -> None:
        await self._conn.execute(
            "DELETE FROM worker_heartbeats WHERE worker_id = :id", {"id": worker_id}
        )


_INSERT_WEBHOOK = """
INSERT INTO webhook_events (id, provider, event_id, type, headers, body, received_at,
    order_id, processed_at, attempts, next_attempt_at)
VALUES (:id, :provider, :event_id, :type, :headers, :body, :received_at, :order_id,
    :processed_at, :attempts, :next_attempt_at)
ON CONFLICT (provider, event_id) DO NOTHING
RETURNING id
"""


class SqlWebhookRepository:
    """The webhook inbox in SQL."""

    def __init__(self, conn: Connection, *, skip_locked: str) -> None:
        self._conn = conn
        self._skip_locked = skip_locked

    async def record(self, event: WebhookRecord) -> bool:
        handled = event.processed_at is not None  # on arrival: one attempt, nothing due
        row = await self._conn.fetchone(
            _INSERT_WEBHOOK,
            {
                "id": event.id,
                "provider": event.provider,
                "event_id": event.event_id,
                "type": event.type,
                "headers": orjson.dumps(event.headers).decode(),
                "body": event.body.decode("utf-8", "replace"),
                "received_at": event.received_at,
                "order_id": event.order_id,
                "processed_at": event.processed_at,
                "attempts": 1 if handled else 0,
                "next_attempt_at": None if handled else event.next_attempt_at or event.received_at,
            },
        )
        return row is not None

    async def get(self, record_id: str) -> WebhookRecord | None:
        row = await self._conn.fetchone(
            "SELECT * FROM webhook_events WHERE id = :id", {"id": record_id}
        )
        return webhook_from_row(row) if row else None

    async def claim_unprocessed(
        self, *, now: datetime, owner: str, until: datetime, limit: int
    ) -> list[WebhookRecord]:
        rows = await self._conn.fetchall(
            f"""
            UPDATE webhook_events SET lease_owner = :owner, lease_until = :until
            WHERE id IN (
                SELECT id FROM webhook_events
                WHERE processed_at IS NULL AND next_attempt_at <= :now
                  AND (lease_until IS NULL OR lease_until < :now)
                ORDER BY received_at, id
                LIMIT :limit{self._skip_locked}
            )
            RETURNING *
            """,
            {"owner": owner, "until": until, "now": now, "limit": limit},
        )
        return sorted((webhook_from_row(row) for row in rows), key=lambda r: (r.received_at, r.id))

    async def processed(self, record_id: str, *, at: datetime, order_id: str | None) -> None:
        # nobody reads its count: it goes with the COMMIT (the settling's, when it is the
        # settling transaction that records it)
        await self._conn.execute_at_commit(
            "UPDATE webhook_events SET processed_at = :at, order_id = COALESCE(:order_id, "
            "order_id), attempts = attempts + 1, last_error = NULL, next_attempt_at = NULL, "
            "lease_owner = NULL, lease_until = NULL WHERE id = :id",
            {"id": record_id, "at": at, "order_id": order_id},
        )

    async def failed(self, record_id: str, *, error: str, retry_at: datetime) -> None:
        await self._conn.execute_at_commit(
            "UPDATE webhook_events SET attempts = attempts + 1, last_error = :error, "
            "next_attempt_at = :retry_at, lease_owner = NULL, lease_until = NULL "
            "WHERE id = :id",
            {"id": record_id, "error": error[:2000], "retry_at": retry_at},
        )

    async def recent(self, *, limit: int, failed_only: bool = False) -> list[WebhookRecord]:
        where = " WHERE processed_at IS NULL AND last_error IS NOT NULL" if failed_only else ""
        rows = await self._conn.fetchall(
            f"SELECT * FROM webhook_events{where} ORDER BY received_at DESC, id DESC LIMIT :limit",
            {"limit": limit},
        )
        return [webhook_from_row(row) for row in rows]

    async def prune_bodies(self, processed_before: datetime, *, at: datetime, limit: int) -> int:
        return await retention.prune_webhook_bodies(
            self._conn, processed_before, at=at, limit=limit, skip_locked=self._skip_locked
        )

    async def prunable_bodies(self, processed_before: datetime) -> int:
        return await retention.prunable_webhook_bodies(self._conn, processed_before)


def webhook_from_row(row: Row) -> WebhookRecord:
    """A stored inbound webhook's row as its record (the console reads them too)."""
    return WebhookRecord(
        id=row["id"],
        provider=row["provider"],
        event_id=row["event_id"],
        type=row["type"],
        headers=orjson.loads(row["headers"]),
        body=str(row["body"]).encode(),
        received_at=must_datetime(row["received_at"]),
        order_id=row["order_id"],
        processed_at=to_datetime(row["processed_at"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=to_datetime(row["next_attempt_at"]),
        pruned_at=to_datetime(row["pruned_at"]),
    )


class SqlFindingRepository:
    """Sweep findings in SQL."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record(self, finding: SweepFinding) -> bool:
        row = await self._conn.fetchone(
            "INSERT INTO sweep_findings (id, provider, provider_ref, kind, amount, currency, "
            "order_id, resolution, found_at) VALUES (:id, :provider, :provider_ref, :kind, "
            ":amount, :currency, :order_id, :resolution, :found_at) "
            "ON CONFLICT (provider, provider_ref, kind) DO NOTHING RETURNING id",
            {
                "id": finding.id,
                "provider": finding.provider,
                "provider_ref": finding.provider_ref,
                "kind": finding.kind,
                "amount": finding.amount,
                "currency": finding.currency,
                "order_id": finding.order_id,
                "resolution": finding.resolution,
                "found_at": finding.found_at,
            },
        )
        return row is not None

    async def resolve(self, finding_id: str, resolution: str) -> None:
        await self._conn.execute(
            "UPDATE sweep_findings SET resolution = :resolution WHERE id = :id",
            {"id": finding_id, "resolution": resolution},
        )

    async def all(self) -> list[SweepFinding]:
        rows = await self._conn.fetchall("SELECT * FROM sweep_findings ORDER BY found_at, id")
        return [
            SweepFinding(
                id=r["id"],
                provider=r["provider"],
                provider_ref=r["provider_ref"],
                kind=r["kind"],
                amount=r["amount"],
                currency=r["currency"],
                resolution=r["resolution"],
                found_at=must_datetime(r["found_at"]),
                order_id=r["order_id"],
            )
            for r in rows
        ]
