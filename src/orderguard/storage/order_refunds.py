"""Refunds in SQL: the ``refunds`` rows of an order, stored with it in one transaction.

A refund is inserted once and then only its state, provider reference and failure reason
change; rows are never deleted. ``(order_id, request_key)`` is unique: one client request
key makes one refund.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderguard.domain.refund_record import Refund, RefundState
from orderguard.storage.database import Connection, Row, must_datetime, to_datetime

_UPSERT_REFUND = """
INSERT INTO refunds (id, order_id, attempt_id, amount, currency, reason, requester,
    request_key, state, provider_ref, failure_reason, created_at, updated_at, checks,
    next_check_at)
VALUES (:id, :order_id, :attempt_id, :amount, :currency, :reason, :requester,
    :request_key, :state, :provider_ref, :failure_reason, :created_at, :updated_at, :checks,
    :next_check_at)
ON CONFLICT (id) DO UPDATE SET state = excluded.state, provider_ref = excluded.provider_ref,
    failure_reason = excluded.failure_reason, updated_at = excluded.updated_at,
    checks = excluded.checks, next_check_at = excluded.next_check_at
"""


async def save_refunds(conn: Connection, refunds: list[Refund]) -> None:
    """Store new refunds and the changes of known ones."""
    if refunds:
        await conn.executemany(_UPSERT_REFUND, [_row(r) for r in refunds])


#: Every refund of the order ``:id``, oldest first (see :func:`refunds_from`).
REFUNDS_OF_ORDER = "SELECT * FROM refunds WHERE order_id = :id ORDER BY created_at, id"
#: What a second refund under the same request key violates (``UNIQUE (order_id,
#: request_key)``, named by PostgreSQL's default; SQLite names the columns).
REFUND_REQUEST_UNIQUE = "request_key"


async def load_refunds(conn: Connection, order_id: str) -> list[Refund]:
    """Every refund of the order, oldest first."""
    return refunds_from(await conn.fetchall(REFUNDS_OF_ORDER, {"id": order_id}))


def refunds_from(rows: list[Row]) -> list[Refund]:
    """The refunds of :data:`REFUNDS_OF_ORDER`'s rows."""
    return [_refund(row) for row in rows]


def refunds_query(order_ids: list[str]) -> tuple[str, dict[str, Any]]:
    """Every refund of each of ``order_ids`` (at least one), oldest first per order: the
    query, to send with others (:func:`refunds_by_order` reads its rows)."""
    ids = {f"id{i}": order_id for i, order_id in enumerate(order_ids)}
    names = ", ".join(f":{name}" for name in ids)
    sql = f"SELECT * FROM refunds WHERE order_id IN ({names}) ORDER BY order_id, created_at, id"
    return sql, ids


def refunds_by_order(rows: list[Row]) -> dict[str, list[Refund]]:
    """The rows of :func:`refunds_query` as each order's refunds."""
    refunds: dict[str, list[Refund]] = {}
    for row in rows:
        refunds.setdefault(row["order_id"], []).append(_refund(row))
    return refunds


async def pending_refunds(conn: Connection, *, updated_before: datetime, limit: int) -> list[str]:
    """Ids of orders holding a refund ``pending`` and unchanged since ``updated_before``."""
    rows = await conn.fetchall(
        "SELECT order_id, MIN(updated_at) AS since FROM refunds "
        "WHERE state = 'pending' AND updated_at <= :before "
        "GROUP BY order_id ORDER BY since, order_id LIMIT :limit",
        {"before": updated_before, "limit": limit},
    )
    return [str(row["order_id"]) for row in rows]


def _row(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "order_id": refund.order_id,
        "attempt_id": refund.attempt_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason,
        "requester": refund.requester,
        "request_key": refund.request_key,
        "state": str(refund.state),
        "provider_ref": refund.provider_ref,
        "failure_reason": refund.failure_reason,
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
        "checks": refund.checks,
        "next_check_at": refund.next_check_at,
    }


def _refund(row: Row) -> Refund:
    return Refund(
        id=row["id"],
        order_id=row["order_id"],
        attempt_id=row["attempt_id"],
        amount=row["amount"],
        currency=row["currency"],
        reason=row["reason"],
        requester=row["requester"],
        request_key=row["request_key"],
        created_at=must_datetime(row["created_at"]),
        updated_at=must_datetime(row["updated_at"]),
        state=RefundState(row["state"]),
        provider_ref=row["provider_ref"],
        failure_reason=row["failure_reason"],
        checks=int(row["checks"]),
        next_check_at=to_datetime(row["next_check_at"]),
    )
