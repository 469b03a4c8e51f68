"""SQLite: WAL journal, a busy timeout, full fsync on commit, a small connection pool."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from orderguard.storage.database import (
    Connection,
    Database,
    Params,
    Row,
    Transaction,
)
from orderguard.storage.errors import (
    AppendOnlyViolation,
    DatabaseUnavailable,
    StorageError,
    UniqueViolation,
)

#: How long a writer waits for another writer's lock before giving up, in milliseconds.
BUSY_TIMEOUT_MS = 10_000
#: Connections kept open; SQLite serialises writers, readers run beside them (WAL).
POOL_SIZE = 4

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    # FULL: a committed order survives power loss, not only a process crash (G1).
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def _adapt(params: Params | None) -> dict[str, Any]:
    """Timestamps become fixed-width UTC ISO text, so they sort and compare as text."""
    if not params:
        return {}
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _iso(value: datetime) -> str:
    # isoformat pads the year to four digits, so text order is time order for every year
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _translate(exc: sqlite3.Error) -> StorageError:
    message = str(exc)
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in message:
        return UniqueViolation(message.split(":", 1)[1].strip())
    if "append-only" in message:
        return AppendOnlyViolation(message)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in message:
        return DatabaseUnavailable(f"SQLite stayed locked by another writer: {message}")
    if isinstance(exc, sqlite3.IntegrityError):
        return StorageError(message)
    return DatabaseUnavailable(message)


class SqliteConnection(Connection):
    """An aiosqlite connection inside a transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            cursor = await self._conn.execute(sql, _adapt(params))
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        try:
            cursor = await self._conn.executemany(sql, [_adapt(row) for row in rows])
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return max(cursor.rowcount, 0)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        yield  # in-process: nothing to gain from batching

    async def execute_script(self, script: str) -> None:
        for statement in split_statements(script):
            await self.execute(statement)

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            cursor = await self._conn.execute(sql, _adapt(params))
            rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return [dict(row) for row in rows]


class _SqliteTransaction(Transaction):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn
        self.conn = SqliteConnection(conn)
        self.finished = False

    async def commit(self) -> None:
        try:
            await self.raw.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        self.finished = True


class SqliteDatabase(Database):
    """A SQLite file shared by a few pooled connections."""

    dialect = "sqlite"

    def __init__(self, path: str, pool: asyncio.Queue[aiosqlite.Connection]) -> None:
        self.path = path
        self._pool = pool
        self._all = list(pool._queue)  # type: ignore[attr-defined]

    @classmethod
    async def open(cls, path: str, *, pool_size: int = POOL_SIZE) -> SqliteDatabase:
        """Open (creating if needed) the database file at ``path``."""
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for _ in range(1 if path == ":memory:" else pool_size):
            pool.put_nowait(await _open_connection(path))
        return cls(path, pool)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        conn = await self._pool.get()
        try:
            try:
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            tx = _SqliteTransaction(conn)
            try:
                yield tx
            finally:
                if not tx.finished:
                    await asyncio.shield(_rollback(conn))
        finally:
            self._pool.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies stay whole)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise StorageError(f"incomplete SQL statement at the end of a script: {pending[:80]!r}")
    return statements


async def _open_connection(path: str) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
    return conn


async def _rollback(conn: aiosqlite.Connection) -> None:
    try:
        await conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        pass  # no transaction was open (BEGIN itself failed)
