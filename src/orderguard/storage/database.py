"""Connections to SQLite or PostgreSQL behind one small interface.

SQL is written once with ``:name`` parameters; this module adapts it to each driver,
converts timestamps; the drivers translate their errors into ``storage.errors``, and
``storage.connect`` opens one. Everything else in ``storage`` is dialect-free.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from orderguard.storage.errors import StorageError

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]
Params = Mapping[str, Any]


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
    return value.astimezone(UTC)


def to_datetime(value: Any) -> datetime | None:
    """Read a stored timestamp (a ``datetime`` from PostgreSQL, ISO text from SQLite)."""
    if value is None or isinstance(value, datetime):
        return utc(value) if value is not None else None
    return datetime.fromisoformat(value)


def must_datetime(value: Any) -> datetime:
    """Like :func:`to_datetime` for NOT NULL columns."""
    result = to_datetime(value)
    if result is None:
        raise StorageError("a NOT NULL timestamp column held NULL")
    return result


class Connection(ABC):
    """One connection inside an open transaction."""

    @abstractmethod
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement for each parameter set; return the number of rows they changed
        in all (not counted inside :meth:`batch`, whose results arrive when it ends)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        """Every row of a query, as dicts."""

    @abstractmethod
    def batch(self) -> AbstractAsyncContextManager[None]:
        """Send the statements of the block together (one round trip where the driver can).

        Errors of any of them surface when the block ends.
        """

    @abstractmethod
    async def execute_script(self, script: str) -> None:
        """Run several statements without parameters (migrations)."""

    async def fetch_each(self, queries: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        """Every row of each query, in order: sent together where the driver can (one round
        trip on PostgreSQL), one after the other elsewhere."""
        return [await self.fetchall(sql, params) for sql, params in queries]

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a query, or ``None``."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class Database(ABC):
    """A pool of connections to one database."""

    dialect: Dialect

    @abstractmethod
    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """A transaction; committed by :meth:`Transaction.commit`, else rolled back."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""


class Transaction(ABC):
    """An open transaction; ``commit`` ends it, leaving without commit rolls back."""

    conn: Connection

    @abstractmethod
    async def commit(self) -> None:
        """Commit."""


def named_to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` parameters as psycopg's ``%(name)s`` (``::`` casts are left alone)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@asynccontextmanager
async def transaction(db: Database, *, write: bool = True) -> AsyncIterator[Connection]:
    """Run a block in a transaction that commits when the block ends without error."""
    async with db.transaction(write=write) as tx:
        yield tx.conn
        await tx.commit()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
