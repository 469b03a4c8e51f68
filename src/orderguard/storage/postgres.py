"""PostgreSQL through psycopg 3 and its async connection pool."""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from orderguard.storage.database import (
    Connection,
    Database,
    Params,
    Row,
    Transaction,
    named_to_pyformat,
    redact_url,
)
from orderguard.storage.errors import (
    AppendOnlyViolation,
    DatabaseUnavailable,
    StorageError,
    UniqueViolation,
)

#: Seconds to wait for a free pooled connection or a new connection.
ACQUIRE_TIMEOUT = 10.0
#: A pooled connection idle longer than this is checked (one round trip) before use.
CHECK_IDLE_AFTER = 30.0

_pg = functools.lru_cache(maxsize=512)(named_to_pyformat)


def _translate(exc: psycopg.Error) -> StorageError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return UniqueViolation(exc.diag.constraint_name or str(exc))
    if "append-only" in str(exc):
        return AppendOnlyViolation(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown):
        return DatabaseUnavailable(str(exc).strip())
    return StorageError(str(exc).strip())


class PostgresConnection(Connection):
    """A pooled psycopg connection inside a transaction."""

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            cursor = await self._conn.execute(_pg(sql), params or {})
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        return cursor.rowcount

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        try:
            async with self._conn.pipeline():
                yield
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def execute_script(self, script: str) -> None:
        try:
            await self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(_pg(sql), rows)
                return max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            cursor = await self._conn.execute(_pg(sql), params or {})
            return await cursor.fetchall()
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def fetch_each(self, queries: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        try:
            async with self._conn.pipeline():  # one round trip for them all
                cursors = [await self._conn.execute(_pg(sql), params) for sql, params in queries]
            return [await cursor.fetchall() for cursor in cursors]
        except psycopg.Error as exc:
            raise _translate(exc) from exc


class _PostgresTransaction(Transaction):
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self.raw = conn
        self.conn = PostgresConnection(conn)
        self.finished = False

    async def commit(self) -> None:
        try:
            await self.raw.commit()
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        self.finished = True


class _IdleCheck:
    """Checks a pooled connection only when it sat idle for a while.

    Checking on every checkout costs a round trip per transaction; a connection used a
    moment ago is alive, and one that died since fails its statement, which the caller
    sees as ``DatabaseUnavailable`` (and the pool then discards it).
    """

    def __init__(self) -> None:
        self._returned: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: psycopg.AsyncConnection[Row]) -> None:
        if time.monotonic() - self._returned.get(conn, 0.0) > CHECK_IDLE_AFTER:
            await AsyncConnectionPool.check_connection(conn)

    async def returned(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._returned[conn] = time.monotonic()


async def _durable(conn: psycopg.AsyncConnection[Row]) -> None:
    """Make every session wait for its commit to reach disk (G1), whatever the server's or
    the database's default: ``synchronous_commit = off`` would acknowledge an order before it
    is durable, and a crash could then lose an order the shopper was told about."""
    await conn.execute("SET synchronous_commit = on")
    await conn.commit()


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10) -> PostgresDatabase:
        """Connect to ``url``; raises :class:`DatabaseUnavailable` when it cannot."""
        idle = _IdleCheck()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=ACQUIRE_TIMEOUT,
            kwargs={"row_factory": dict_row, "autocommit": False, "connect_timeout": 5},
            check=idle.check,
            reset=idle.returned,
            configure=_durable,
        )
        try:
            await pool.open(wait=True, timeout=ACQUIRE_TIMEOUT)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise DatabaseUnavailable(f"cannot connect to {redact_url(url)}: {exc}") from exc
        return cls(pool)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        try:
            async with self._pool.connection() as conn:
                tx = _PostgresTransaction(conn)
                try:
                    yield tx
                finally:
                    if not tx.finished and not conn.closed:
                        await conn.rollback()
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc).strip()) from exc

    async def close(self) -> None:
        await self._pool.close()
