"""Stored shopper data, page by page, for the shopper-data audit (read-only): the
:class:`~orderguard.storage.ports.ShopperRows` of SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from orderguard.storage.database import Database, Row, must_datetime, transaction
from orderguard.storage.ports import ShopperRow


class SqlShopperRows:
    """:class:`~orderguard.storage.ports.ShopperRows` on SQLite or PostgreSQL: a keyset scan
    over ``(created_at, id)``, one read-only transaction a page."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def scan(
        self, *, since: datetime | None = None, page: int = 500
    ) -> AsyncIterator[ShopperRow]:
        after: tuple[datetime, str] | None = None
        while True:
            async with transaction(self._db, write=False) as conn:
                rows = await conn.fetchall(*_page_query(since, after, page))
            for r in rows:
                yield _shopper_row(r)
            if len(rows) < page:
                return
            last = rows[-1]
            after = (must_datetime(last["created_at"]), str(last["id"]))


def _page_query(
    since: datetime | None, after: tuple[datetime, str] | None, page: int
) -> tuple[str, dict[str, object]]:
    """The SQL and parameters of the page after ``after`` (the first page when ``None``)."""
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
    return sql, params


def _shopper_row(r: Row) -> ShopperRow:
    return ShopperRow(
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
