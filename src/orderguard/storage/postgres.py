"""PostgreSQL through psycopg 3 and its async connection pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.generators import fetch_many
from psycopg.pq.abc import PGresult
from psycopg.rows import dict_row
from psycopg.waiting import Wait
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from orderguard.storage.database import (
    Connection,
    Database,
    Meaning,
    Params,
    Row,
    Streamed,
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


def _arrays_as_text(params: Params) -> Params:
    """``params`` with each list of integers as the text of a PostgreSQL array (``{1,2}``),
    for a statement that casts it (``CAST(:amounts AS BIGINT[])``): ``COPY`` takes no bound
    parameter, and psycopg would write the list element by element. Long text goes in a
    :class:`~.database.Streamed` statement's settings, never in its text."""
    if not isinstance(params, Mapping):
        return params
    converted = dict(params)
    for name, value in params.items():
        if isinstance(value, list) and all(type(v) is int for v in value):
            converted[name] = "{" + ",".join(str(v) for v in value) + "}"
    return converted


#: Memory each sort or hash of a streamed statement may take before it spills to disk (the
#: server's default, 4 MB, is set for many small queries at once). A ``NOT IN (subquery)``
#: is hashed only while the subquery's rows fit: past that, PostgreSQL reads them all
#: again for every row tested, and a month's report would test hundreds of thousands of
#: rows against as many (a review measured 0.03 s becoming 12.8 s on 20,000 rows at
#: 64 kB). 64 MB (twice that for a hash) holds the references of over a million payments.
COPY_WORK_MEM = "64MB"
#: Rows ``copy_csv`` keeps for a file before it writes them there at once.
_ROWS_PER_WRITE = 2000
#: Rows of a ``COPY TO`` read at most in one wake-up of the event loop.
_ROWS_PER_READ = 4096


def _buffered_rows(pgconn: pq.abc.PGconn) -> PQGen[tuple[list[bytes], list[PGresult] | None]]:
    """The ``COPY TO`` rows libpq holds already, at most :data:`_ROWS_PER_READ` (waiting
    for the socket only when it holds none), and, once the copy is over, the statement's
    results (``None`` before).

    psycopg's own reader returns one row per call, each through the connection's wait
    (about 1.4 µs a row in this process; 0.5 µs here): a day's report reads 32,000 rows,
    a week's 225,000, on the core the database's backends need too."""
    rows: list[bytes] = []
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            rows.append(bytes(data))
            if len(rows) == _ROWS_PER_READ:
                return rows, None
        elif nbytes == 0:
            if rows:
                return rows, None
            while not (yield Wait.R):
                continue
            pgconn.consume_input()
        else:
            # -1: the copy is over. Its result is read at once, as psycopg's reader does:
            # left unread, the connection would stay busy while the caller handles the last
            # rows, and an error there could not be told apart from a broken connection.
            return rows, (yield from fetch_many(pgconn))


async def _copied_rows(conn: psycopg.AsyncConnection[Row]) -> AsyncGenerator[list[bytes], None]:
    """The rows of the ``COPY TO`` under way on ``conn`` (begun by ``cursor.copy``), a batch
    at a time where ``async for chunk in copy`` gives one at a time; the statement's error,
    if it fails, raised as psycopg raises it, after the rows that came before it. The last
    batch comes with the connection idle again: the copy block's exit has nothing left to
    read (it reads only to end a copy interrupted while the server still sends)."""
    while True:
        rows, results = await conn.wait(_buffered_rows(conn.pgconn))
        if rows:
            yield rows
        if results is not None:
            break
    failed = [r for r in results if r.status != pq.ExecStatus.COMMAND_OK]
    if failed:
        raise psycopg.errors.error_from_result(failed[0], encoding=conn.info.encoding)
    if len(results) != 1:
        raise psycopg.ProgrammingError(f"a COPY ended with {len(results)} results, not one")


#: ``copy_csv``'s transaction when it streams several statements: theirs is one snapshot.
_REPEATABLE_READ = b"BEGIN ISOLATION LEVEL REPEATABLE READ"
#: What ``pg_export_snapshot()`` returns (hexadecimal numbers and dashes).
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
#: Seconds ``copy_csv`` waits for a pooled connection to stream a statement beside the
#: first; past them, the statement runs after it, on the first one's connection.
_HELPER_WAIT = 0.2


async def _prepare_copy(conn: psycopg.AsyncConnection[Row], settings: Mapping[str, str]) -> None:
    """For the rest of ``conn``'s transaction, queued in its pipeline: no parallel workers
    (thousands of rows by index: they would only add their start, 60 ms of a 0.3 s export
    on 10 M orders), :data:`COPY_WORK_MEM` and ``settings``."""
    await conn.execute(b"SET LOCAL max_parallel_workers_per_gather = 0")
    await conn.execute(f"SET LOCAL work_mem = '{COPY_WORK_MEM}'".encode())
    await _set(conn, settings)


async def _set(conn: psycopg.AsyncConnection[Row], settings: Mapping[str, str]) -> None:
    for name, value in settings.items():
        # A bound parameter: never part of a statement's text.
        await conn.execute(b"SELECT set_config(%s, %s, true)", (name, value), prepare=False)


async def _together(
    work: Sequence[tuple[psycopg.AsyncConnection[Row], Coroutine[Any, Any, None]]],
) -> None:
    """Run each coroutine streaming on its connection at once; the first error stops the
    others at once: each query still running is cancelled on the server and its connection
    closed (a connection interrupted mid-``COPY`` cannot be used again; the pool replaces
    it), then the error is raised. So is a cancellation of the caller."""
    tasks = [(conn, asyncio.create_task(coroutine)) for conn, coroutine in work]
    try:
        done, _ = await asyncio.wait([t for _, t in tasks], return_when=asyncio.FIRST_EXCEPTION)
        # Every error read (none left for the loop to report), the first raised.
        errors = [e for t in done if not t.cancelled() and (e := t.exception()) is not None]
        if errors:
            raise errors[0]
    finally:
        unfinished = [(conn, task) for conn, task in tasks if not task.done()]
        for _, task in unfinished:
            task.cancel()
        await asyncio.gather(*(task for _, task in unfinished), return_exceptions=True)
        for conn, _ in unfinished:
            await _abandon(conn)


async def _abandon(conn: psycopg.AsyncConnection[Row]) -> None:
    """Stop what ``conn`` is running on the server, and close it."""
    if conn.closed:
        return
    try:
        if conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            with contextlib.suppress(psycopg.Error):
                await conn.cancel_safe(timeout=5.0)
    finally:
        await conn.close()


async def _end_helper(conn: psycopg.AsyncConnection[Row]) -> None:
    """End a helper's read-only transaction before the pool takes the connection back,
    keeping its prepared statements (a connection interrupted mid-statement is closed)."""
    if conn.closed:
        return
    if conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
        await _abandon(conn)
        return
    try:
        await _roll_back(conn, keep_prepared=True)
    except psycopg.Error:
        await conn.close()


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

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Row],
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None,
    ) -> None:
        self._conn = conn
        #: Where :meth:`copy_csv` borrows connections to stream statements side by side.
        self._pool = pool
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
        self, statements: Sequence[Streamed], parts: Mapping[str, tuple[Path, Sequence[str]]]
    ) -> dict[str, int] | None:
        if self._piped():
            raise StorageError("COPY cannot run inside a batch")
        first, *others = statements
        if others and (self.begun or self.held):
            # Begun: its snapshot is not theirs. Held writes: the others would not see them.
            raise StorageError("statements streamed together must begin their transaction")
        widest = max(len(header) for _, header in parts.values())
        try:
            with ExitStack() as files:
                # By a row's first byte (a part's one-letter name): its file, the rows not
                # yet written there, and how many bytes its row ends with past its columns
                # (one "," per NULL column past its own, and the newline).
                sinks: dict[int, tuple[BinaryIO, list[bytes], int]] = {}
                for name, (path, header) in parts.items():
                    if len(name.encode()) != 1:
                        raise StorageError(f"a part's name is one letter, not {name!r}")
                    out = files.enter_context(path.open("wb"))
                    out.write((",".join(header) + "\n").encode())
                    sinks[name.encode()[0]] = (out, [], widest - len(header) + 1)

                written = dict.fromkeys(sinks, 0)

                def flush(tag: int) -> None:
                    out, rows, _ = sinks[tag]
                    out.write(b"\n".join(rows) + b"\n")
                    written[tag] += len(rows)
                    rows.clear()

                async def stream(conn: psycopg.AsyncConnection[Row], statement: Streamed) -> None:
                    # Without parameters psycopg formats nothing: "%" stays as written.
                    text = _pg(statement.sql) if statement.params else statement.sql
                    sql = f"COPY ({text}) TO STDOUT WITH (FORMAT csv)"
                    params = _arrays_as_text(statement.params) if statement.params else None
                    async with conn.cursor() as cursor:
                        async with cursor.copy(sql, params):
                            # One message per row: "part,c1,...,cN\n".
                            async with contextlib.aclosing(_copied_rows(conn)) as copied:
                                async for batch in copied:
                                    for row in batch:
                                        _, rows, tail = sinks[row[0]]
                                        rows.append(row[2:-tail])
                                        if len(rows) == _ROWS_PER_WRITE:
                                            flush(row[0])

                async with self._conn.pipeline():
                    if self.held or not self.begun:
                        # One snapshot for every statement: the others import it.
                        await self._begin_and_held(_REPEATABLE_READ if others else b"BEGIN")
                    await _prepare_copy(self._conn, first.settings)
                    exported = (
                        await self._conn.execute(b"SELECT pg_export_snapshot() AS id")
                        if others
                        else None
                    )
                snapshot = str((await exported.fetchone() or {})["id"]) if exported else ""
                async with AsyncExitStack() as helpers:
                    beside: list[tuple[psycopg.AsyncConnection[Row], Streamed]] = []
                    alone = [first]  # streamed on this connection, one after the other
                    for statement in others:
                        conn = await self._helper(helpers, snapshot, statement.settings)
                        if conn is None:
                            alone.append(statement)
                        else:
                            beside.append((conn, statement))

                    async def in_turn() -> None:
                        for statement in alone:
                            if statement is not first:
                                await _set(self._conn, statement.settings)
                            await stream(self._conn, statement)

                    await _together(
                        [(self._conn, in_turn()), *((c, stream(c, s)) for c, s in beside)]
                    )
                for tag, (_, rows, _) in sinks.items():
                    if rows:
                        flush(tag)
            return {name: written[name.encode()[0]] for name in parts}
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    async def _helper(
        self, helpers: AsyncExitStack, snapshot: str, settings: Mapping[str, str]
    ) -> psycopg.AsyncConnection[Row] | None:
        """A pooled connection in a read-only transaction of ``snapshot`` with ``settings``
        (rolled back when ``helpers`` closes), or ``None`` when none is free now: the
        statement then runs on this connection, in the same snapshot."""
        if self._pool is None or not _SNAPSHOT_ID.fullmatch(snapshot):
            return None
        try:
            conn = await helpers.enter_async_context(self._pool.connection(timeout=_HELPER_WAIT))
        except PoolTimeout:
            return None
        helpers.push_async_callback(_end_helper, conn)
        async with conn.pipeline():
            await conn.execute(b"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Not a parameter: SET takes none (the id was checked above).
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'".encode())
            await _prepare_copy(conn, settings)
        return conn

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

    async def _begin_and_held(self, begin: bytes = b"BEGIN") -> None:
        """Queue ``begin`` (once) and the statements held for the commit, in a pipeline."""
        if self.alone:
            raise StorageError(
                "a statement sent alone ended this transaction: nothing else may be written"
            )
        if not self.begun:
            await self._conn.execute(begin)
            self.begun = True
        held, self.held = self.held, []
        for sql, params in held:
            await self._conn.execute(_pg(sql), params)

    def _piped(self) -> bool:
        """A pipeline is open (:meth:`batch`): statements go with it."""
        return self._conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


class _PostgresTransaction(Transaction):
    def __init__(
        self,
        conn: psycopg.AsyncConnection[Row],
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None,
    ) -> None:
        self.raw = conn
        self.pg = PostgresConnection(conn, pool)
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
                tx = _PostgresTransaction(conn, self._pool)
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
