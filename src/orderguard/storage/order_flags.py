"""Review flags in SQL: the ``order_flags`` rows of an order, open and cleared.

A flag is inserted once and updated at most once, when it is cleared; rows are never deleted.
"""

from __future__ import annotations

from typing import Any

from orderguard.domain.flags import FlagReason, ReviewFlag
from orderguard.storage.database import Connection, Row, must_datetime, to_datetime

#: The condition an ``orders`` row (as ``orders``) meets when it is in the review queue.
HAS_OPEN_FLAG = (
    "EXISTS (SELECT 1 FROM order_flags f WHERE f.order_id = orders.id AND f.cleared_at IS NULL)"
)

_UPSERT_FLAG = """
INSERT INTO order_flags (id, order_id, position, reason, detail, raised_by, raised_at,
    cleared_at, cleared_by)
VALUES (:id, :order_id, :position, :reason, :detail, :raised_by, :raised_at, :cleared_at,
    :cleared_by)
ON CONFLICT (id) DO UPDATE SET cleared_at = excluded.cleared_at,
    cleared_by = excluded.cleared_by
WHERE order_flags.cleared_at IS NULL
"""


async def save_flags(conn: Connection, order_id: str, flags: list[ReviewFlag]) -> None:
    """Store new flags and the clearing of open ones; a cleared flag never reopens."""
    if flags:
        rows = [_row(order_id, i, flag) for i, flag in enumerate(flags)]
        await conn.executemany(_UPSERT_FLAG, rows)


async def load_flags(conn: Connection, order_ids: list[str]) -> dict[str, list[ReviewFlag]]:
    """Every flag of each order, in the order they were raised."""
    if not order_ids:
        return {}
    return flags_by_order(await conn.fetchall(*flags_query(order_ids)))


def flags_query(order_ids: list[str]) -> tuple[str, dict[str, Any]]:
    """The query of :func:`load_flags` (at least one order), to send with others."""
    ids = {f"id{i}": order_id for i, order_id in enumerate(order_ids)}
    names = ", ".join(f":{name}" for name in ids)
    sql = f"SELECT * FROM order_flags WHERE order_id IN ({names}) ORDER BY order_id, position"
    return sql, ids


def flags_by_order(rows: list[Row]) -> dict[str, list[ReviewFlag]]:
    """The rows of :func:`flags_query` as each order's flags."""
    found: dict[str, list[ReviewFlag]] = {}
    for row in rows:
        found.setdefault(row["order_id"], []).append(_flag(row))
    return found


#: Every flag of the order ``:id``, in the order they were raised (see :func:`flags_from`).
FLAGS_OF_ORDER = "SELECT * FROM order_flags WHERE order_id = :id ORDER BY position"


def flags_from(rows: list[Row]) -> list[ReviewFlag]:
    """The flags of :data:`FLAGS_OF_ORDER`'s rows."""
    return [_flag(row) for row in rows]


def _row(order_id: str, position: int, flag: ReviewFlag) -> dict[str, Any]:
    return {"id": flag.id, "order_id": order_id, "position": position, **flag.fields()}


def _flag(row: Row) -> ReviewFlag:
    return ReviewFlag(
        id=row["id"],
        reason=FlagReason(row["reason"]) if row["reason"] in _KNOWN else FlagReason.OTHER,
        detail=row["detail"],
        raised_by=row["raised_by"],
        raised_at=must_datetime(row["raised_at"]),
        cleared_at=to_datetime(row["cleared_at"]),
        cleared_by=row["cleared_by"],
    )


#: The reason codes this version knows; a row from a newer version reads as ``other``.
_KNOWN = frozenset(str(reason) for reason in FlagReason)
