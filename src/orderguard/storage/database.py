"""Connections to SQLite or PostgreSQL behind one small interface.

SQL is written once with ``:name`` parameters; this module adapts it to each driver,
converts timestamps; the drivers translate their errors into ``storage.errors``, and
``storage.connect`` opens one. Everything else in ``storage`` is dialect-free.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from orderguard.storage.errors import StorageError, UniqueViolation

Dialect = Literal["sqlite", "postgresql"]
#: What a unique violation means to the code that sent the statement: its own error, or
#: ``None`` for one it does not know (raised as it is).
Meaning = Callable[[UniqueViolation], Exception | None]
Row = dict[str, Any]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Streamed:
    """A statement :meth:`Connection.copy_csv` streams: its text and parameters, and its
    settings. ``COPY`` takes no bound parameter: each is written into the statement, whose
    text the server then reads character by character (a day's references are a megabyte).
    Long values go in ``settings`` instead: each is set by a bound parameter for the rest
    of the statement's transaction, and ``sql`` reads it with ``current_setting('<name>')``
    (names are ``orderguard.<something>``)."""

    sql: str
    params: Params = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)


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

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a query, or ``None``."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def copy_csv(
        self, statements: Sequence[Streamed], parts: Mapping[str, tuple[Path, Sequence[str]]]
    ) -> dict[str, int] | None:
        """Write the rows of queries as CSV to several files, streamed by the server
        (PostgreSQL's ``COPY ... TO STDOUT``: no row becomes a Python object). A query's
        first column names the part a row goes to (a key of ``parts``: its file and the
        header written first); the row's other columns, as many as the header names, are
        written there (the columns past them must be NULL). How many rows went to each part;
        ``None`` where the driver cannot (nothing written): the caller reads them otherwise.

        Several statements read one snapshot of the database, as one statement would, and
        run at once where they can (PostgreSQL: each after the first on a pooled
        connection of its own, in the first one's snapshot, exported to it; one after the
        other when no connection is free): their rows reach the files as they come, each
        row whole. Statements streamed together begin their transaction (``StorageError``
        when one was begun: its snapshot is not the one they would read)."""
        return None

    async def fetch_each(self, queries: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        """Every row of each query, in order, sent together where the driver can (one round
        trip on PostgreSQL instead of one per query). They run one after the other, so a
        row lock the first takes holds for the rest."""
        return [await self.fetchall(sql, params) for sql, params in queries]

    async def execute_counted(self, sql: str, params: Params | None = None) -> Callable[[], int]:
        """Run one statement; returns how to read the number of rows it changed. Inside
        :meth:`batch` the count is known only when the block ends: read it after."""
        changed = await self.execute(sql, params)
        return lambda: changed

    @asynccontextmanager
    async def at_commit(self, meaning: Meaning | None = None) -> AsyncIterator[None]:
        """Statements of the block whose answers nobody reads (inserts, counts not wanted):
        where the driver can, they are held and sent with the ``COMMIT``, one round trip for
        all (or first, in order, when another statement of the transaction comes before the
        commit). Their unique violations are raised as ``meaning`` says, from the block or
        from the commit."""
        try:
            yield
        except UniqueViolation as exc:
            raise meant(exc, [meaning] if meaning else []) from exc

    async def fetchall_alone(
        self, sql: str, params: Params | None = None, *, meaning: Meaning | None = None
    ) -> list[Row]:
        """Every row of a statement that is all the transaction writes: the unit of work
        commits next, nothing else is written before. Where the driver can and nothing was
        sent or held before it, it is sent on its own and the server commits it as it runs
        (PostgreSQL: no ``BEGIN``, no ``COMMIT``, one statement in one round trip); the
        commit then has nothing to send, and the transaction takes no other write (reads
        may follow, each alone too). Its unique violations are raised as ``meaning`` says."""
        try:
            return await self.fetchall(sql, params)
        except UniqueViolation as exc:
            raise meant(exc, [meaning] if meaning else []) from exc

    async def execute_at_commit(self, sql: str, params: Params | None = None) -> None:
        """Run a statement whose answer nobody reads before the transaction commits. Where
        the driver can, it is held and sent with the ``COMMIT`` (one round trip for both),
        so its errors surface from the commit; before any other statement of the
        transaction it is sent first, so it runs in the order it was asked for."""
        await self.execute(sql, params)


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


def meant(exc: UniqueViolation, meanings: Sequence[Meaning]) -> Exception:
    """What ``exc`` means to the first of ``meanings`` that knows it, else ``exc``."""
    for meaning in meanings:
        found = meaning(exc)
        if found is not None:
            return found
    return exc


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
