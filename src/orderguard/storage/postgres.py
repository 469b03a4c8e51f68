"""PostgreSQL through psycopg 3 and its async connection pool."""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import pq
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from orderguard.storage.database import (
    Connection,
    Database,
    Meaning,
    Params,
    Row,
    Transaction,
    meant,
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

#: Backslashes and double quotes escaped, as an element of an array's text has them.
_ARRAY_ELEMENT = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _arrays_as_text(params: Params) -> Params:
    """``params`` with each list of text or integers as the text of a PostgreSQL array
    (``{"a","b\\"c"}``), for a statement that casts it (``CAST(:refs AS TEXT[])``).

    ``COPY`` takes no bound parameter: psycopg writes each one into the statement, and a
    list element by element, each matched against a regular expression in Python (0.18 s
    for the 64,000 references of a day's report on 10 M orders); a string is escaped once,
    by libpq."""
    if not isinstance(params, Mapping):
        return params
    converted = dict(params)
    for name, value in params.items():
        kinds = set(map(type, value)) if isinstance(value, list) else None
        if kinds is not None and kinds <= {str}:
            text = "".join(value)
            if '"' in text or "\\" in text:  # rare: escape element by element
                value = [v.translate(_ARRAY_ELEMENT) for v in value]
            converted[name] = '{"' + '","'.join(value) + '"}' if value else "{}"
        elif kinds is not None and kinds <= {int}:
            converted[name] = "{" + ",".join(str(v) for v in value) + "}"
    return converted


def _translate(exc: psycopg.Error) -> StorageError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return UniqueViolation(exc.diag.constraint_name or str(exc))
    if "append-only" in str(exc):
        return AppendOnlyViolation(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown):
        return DatabaseUnavailable(str(exc).strip())
    return StorageError(str(exc).strip())


def _meant(exc: psycopg.errors.UniqueViolation, meanings: Sequence[Meaning]) -> Exception:
    """What a unique violation means to the statements' senders (:meth:`at_commit`)."""
    return meant(UniqueViolation(exc.diag.constraint_name or str(exc)), meanings)


class PostgresConnection(Connection):
    """A pooled psycopg connection inside a transaction.

    Round trips are what an order costs most here, so the transaction's ``BEGIN`` goes
    with its first statement (psycopg waits for a ``BEGIN`` of its own: the pool's
    connections are in autocommit mode and every transaction is begun here, by
    :meth:`_begin`); :meth:`fetch_each` and :meth:`batch` send their statements together;
    statements sent :meth:`at_commit` wait for the ``COMMIT`` and go with it."""

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn
        #: Statements held for the commit (:meth:`at_commit`), and what their unique
        #: violations mean.
        self.held: list[tuple[str, Params]] = []
        self.meanings: list[Meaning] = []
        self._holding = 0
        #: Whether ``BEGIN`` was sent (with the first statement).
        self.begun = False
        #: Whether a statement was sent alone (:meth:`fetchall_alone`): committed as it ran.
        self.alone = False
        #: Whether a script ran (:meth:`execute_script`: a migration's DDL, say).
        self.scripted = False

    async def execute(self, sql: str, params: Params | None = None) -> int:
        if self._holding:
            self.held.append((sql, params or {}))
            return 0
        cursor = await self._send(sql, params or {})
        return cursor.rowcount

    async def execute_counted(self, sql: str, params: Params | None = None) -> Callable[[], int]:
        cursor = await self._send(sql, params or {})
        return lambda: cursor.rowcount  # set when a batch's results arrive

    async def execute_at_commit(self, sql: str, params: Params | None = None) -> None:
        self.held.append((sql, params or {}))

    @asynccontextmanager
    async def at_commit(self, meaning: Meaning | None = None) -> AsyncIterator[None]:
        if meaning is not None:
            self.meanings.append(meaning)
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        if self._piped():  # nested: the outer block sends it all
            yield
            return
        try:
            async with self._conn.pipeline():
                await self._begin_and_held()
                yield
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, self.meanings) from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def execute_script(self, script: str) -> None:
        self.scripted = True
        async with self.batch():
            pass  # BEGIN and what was held, then the script on its own (simple protocol)
        try:
            await self._conn.execute(script.encode())
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        if self._holding:
            self.held.extend((sql, row) for row in rows)
            return 0
        try:
            if not self._piped() and (self.held or not self.begun):
                # its own round trip: the count of an executemany ending a pipeline it did
                # not open is not summed
                async with self._conn.pipeline():
                    await self._begin_and_held()
            async with self._conn.cursor() as cursor:
                await cursor.executemany(_pg(sql), rows)
                return max(cursor.rowcount, 0)
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, self.meanings) from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = await self._send(sql, params or {})
        try:
            return await cursor.fetchall()
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def fetch_each(self, queries: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        try:
            async with self._conn.pipeline():
                await self._begin_and_held()
                cursors = [await self._conn.execute(_pg(sql), params) for sql, params in queries]
            return [await cursor.fetchall() for cursor in cursors]
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, self.meanings) from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def copy_csv(
        self, sql: str, params: Params, parts: Mapping[str, tuple[Path, Sequence[str]]]
    ) -> dict[str, int] | None:
        counts = dict.fromkeys(parts, 0)
        try:
            if self._piped():
                raise StorageError("COPY cannot run inside a batch")
            async with self._conn.pipeline():
                if self.held or not self.begun:
                    await self._begin_and_held()
                # Thousands of rows by index: parallel workers would only add their start
                # (60 ms of a 0.3 s export on 10 M orders). For the rest of the transaction.
                await self._conn.execute(b"SET LOCAL max_parallel_workers_per_gather = 0")
            statement = f"COPY ({_pg(sql)}) TO STDOUT WITH (FORMAT csv)"
            widest = max(len(header) for _, header in parts.values())
            with ExitStack() as files:
                sinks: dict[bytes, tuple[BinaryIO, int, str]] = {}
                for name, (path, header) in parts.items():
                    out = files.enter_context(path.open("wb"))
                    out.write((",".join(header) + "\n").encode())
                    # A row of this part ends in one "," per NULL column past its own.
                    sinks[name.encode()] = (out, widest - len(header) + 1, name)
                async with self._conn.cursor() as cursor:
                    async with cursor.copy(statement, _arrays_as_text(params)) as copy:
                        # One message per row: "part,c1,...,cN\n".
                        async for chunk in copy:
                            row = bytes(chunk)
                            cut = row.index(b",")
                            sink, tail, name = sinks[row[:cut]]
                            sink.write(row[cut + 1 : len(row) - tail] + b"\n")
                            counts[name] += 1
            return counts
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def fetchall_alone(
        self, sql: str, params: Params | None = None, *, meaning: Meaning | None = None
    ) -> list[Row]:
        if self.begun or self.held or self._piped():
            if meaning is not None:  # within the transaction, as fetchall
                self.meanings.append(meaning)
            return await self.fetchall(sql, params)
        self.alone = True  # autocommit: the server commits it as it runs
        try:
            cursor = await self._conn.execute(_pg(sql), params or {})
            return await cursor.fetchall()
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, [meaning] if meaning else []) from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def _send(self, sql: str, params: Params) -> psycopg.AsyncCursor[Row]:
        """Run one statement, with the ``BEGIN`` and the held statements when they are
        still to send (in a pipeline: one round trip for all)."""
        try:
            if self._piped() or (self.begun and not self.held):
                return await self._conn.execute(_pg(sql), params)
            async with self._conn.pipeline():
                await self._begin_and_held()
                cursor = await self._conn.execute(_pg(sql), params)
            return cursor
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, self.meanings) from exc
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def _begin_and_held(self) -> None:
        """Queue ``BEGIN`` (once) and the statements held for the commit, in a pipeline."""
        if self.alone:
            raise StorageError(
                "a statement sent alone ended this transaction: nothing else may be written"
            )
        if not self.begun:
            await self._conn.execute(b"BEGIN")
            self.begun = True
        held, self.held = self.held, []
        for sql, params in held:
            await self._conn.execute(_pg(sql), params)

    def _piped(self) -> bool:
        """A pipeline is open (:meth:`batch`): statements go with it."""
        return self._conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


class _PostgresTransaction(Transaction):
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self.raw = conn
        self.pg = PostgresConnection(conn)
        self.conn = self.pg
        self.finished = False

    async def commit(self) -> None:
        """Commit, sending the statements held for it in the same round trip (nothing to
        commit when no statement was sent)."""
        try:
            if self.pg.begun or self.pg.held:
                async with self.raw.pipeline():
                    await self.pg._begin_and_held()
                    await self.raw.execute(b"COMMIT")
        except psycopg.errors.UniqueViolation as exc:
            raise _meant(exc, self.pg.meanings) from exc
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


async def _roll_back(conn: psycopg.AsyncConnection[Row], *, keep_prepared: bool) -> None:
    """End a transaction nobody committed, keeping the statements prepared on ``conn``
    when ``keep_prepared`` and the transaction is not in error.

    psycopg forgets every prepared statement of a connection at any ``ROLLBACK`` (and sends
    ``DEALLOCATE ALL``): a statement prepared against a table that a rolled-back ``ALTER``
    had reshaped would no longer match it. Here, what is rolled back without a commit is
    nearly always a read (the worker's duties look for work and find none several times a
    second), and each such rollback made the connection's next five uses of each hot
    statement parse and plan it again before preparing it anew, on the server and in
    psycopg. Only a script (:meth:`PostgresConnection.execute_script`) changes the schema
    here; a transaction that ran one, or that failed, rolls back as psycopg does.
    """
    if not keep_prepared or conn.pgconn.transaction_status != pq.TransactionStatus.INTRANS:
        await conn.rollback()
        return
    threshold = conn.prepare_threshold
    conn.prepare_threshold = None  # psycopg then neither prepares nor inspects this one
    try:
        await conn.execute(b"ROLLBACK")
    finally:
        conn.prepare_threshold = threshold


async def _configure(conn: psycopg.AsyncConnection[Row]) -> None:
    """Set up every session, whatever the server's or the database's defaults:

    - it waits for its commit to reach disk (G1): ``synchronous_commit = off`` would
      acknowledge an order before it is durable, and a crash could then lose an order the
      shopper was told about;
    - it never compiles a plan to machine code (``jit = off``): PostgreSQL does once a
      plan's estimated cost passes ``jit_above_cost``, and orderguard's statements are
      lookups by index whose estimates can pass it while they run in milliseconds. A day's
      reconciliation on 10 M orders spent 0.78 s of its 0.80 s read compiling
      (``EXPLAIN ANALYZE``, ``docs/data-growth.md``).
    """
    # autocommit: for the session; both in one round trip
    await conn.execute("SET synchronous_commit = on; SET jit = off")


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
            # autocommit: psycopg would send each BEGIN alone and wait for it; the
            # transactions are begun with their first statement instead (PostgresConnection)
            kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": 5},
            check=idle.check,
            reset=idle.returned,
            configure=_configure,
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
                        await _roll_back(conn, keep_prepared=not tx.pg.scripted)
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc).strip()) from exc

    async def close(self) -> None:
        await self._pool.close()
