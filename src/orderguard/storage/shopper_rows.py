"""Stored shopper data, page by page, for the shopper-data audit (read-only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from orderguard.storage.database import Database, must_datetime, transaction


@dataclass(frozen=True, slots=True)
class ShopperRow:
    """One order's shopper data as stored."""

    order_id: str
    created_at: datetime
    email: str
    name: str
    phone: str | None
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


async def shopper_rows(
    db: Database, *, since: datetime | None, page: int = 500
) -> AsyncIterator[ShopperRow]:
    """Every order's shopper data (placed at or after ``since``), oldest first, in pages."""
    after: tuple[datetime, str] | None = None
    while True:
        where = ["created_at >= :since"] if since is not None else []
        if after is not None:
            where.append("(created_at > :at OR (created_at = :at AND id > :id))")
        sql = (
            "SELECT id, created_at, customer_email, customer_name, customer_phone, ship_line1, "
            "ship_line2, ship_city, ship_postal_code, ship_country FROM orders"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY created_at, id LIMIT :page"
        )
        params: dict[str, object] = {"since": since, "page": page}
        if after is not None:
            params.update(at=after[0], id=after[1])
        async with transaction(db, write=False) as conn:
            rows = await conn.fetchall(sql, params)
        for r in rows:
            yield ShopperRow(
                order_id=r["id"],
                created_at=must_datetime(r["created_at"]),
                email=r["customer_email"],
                name=r["customer_name"],
                phone=r["customer_phone"],
                line1=r["ship_line1"],
                line2=r["ship_line2"],
                city=r["ship_city"],
                postal_code=r["ship_postal_code"],
                country=r["ship_country"],
            )
        if len(rows) < page:
            return
        last = rows[-1]
        after = (must_datetime(last["created_at"]), str(last["id"]))
