"""Statements streamed to files together (``copy_csv``, PostgreSQL) read one snapshot of the
database, as one statement would, whether they run side by side on connections of their own
or, when the pool has none free, one after the other; each row reaches its file whole, and
long values reach the statements as settings, never in their text."""

from __future__ import annotations

import asyncio
import csv
import hashlib
from pathlib import Path

import psycopg
import pytest

from orderguard.storage import postgres
from orderguard.storage.connect import connect
from orderguard.storage.database import Streamed
from orderguard.storage.errors import StorageError

PARTS = ("x", "y")
#: Each statement's rows go to part ``x`` (one column) or ``y`` (two columns).
BOTH = "SELECT 'x' AS part, CAST(n AS TEXT) AS c1, NULL AS c2 FROM t UNION ALL " \
    "SELECT 'y', CAST(n AS TEXT), 'row ' || n || E',\\n\"quoted\"' FROM t"  # fmt: skip


def parts(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    return {"x": (tmp_path / "x.csv", ("n",)), "y": (tmp_path / "y.csv", ("n", "text"))}


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as source:
        return list(csv.reader(source))


@pytest.fixture
def table(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 5000)")
    return pg_url


async def copy(url: str, tmp_path: Path, pool_size: int, *statements: Streamed) -> dict[str, int]:
    db = await connect(url, pool_size=pool_size)
    try:
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv(list(statements), parts(tmp_path))
    finally:
        await db.close()
    assert written is not None
    return written


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_statements_streamed_together_read_one_snapshot(
    table: str, tmp_path: Path, pool_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row committed after the first statement's snapshot was taken, before the others
    begin, is seen by none of them: side by side (a pool of three) or after it (a pool of
    one: no connection is free)."""
    helper = postgres.PostgresConnection._helper
    seen: list[bool] = []

    async def commit_then_help(self: postgres.PostgresConnection, *args: object) -> object:
        with psycopg.connect(table, autocommit=True) as other:
            other.execute("INSERT INTO t VALUES (0)")
        conn = await helper(self, *args)  # type: ignore[arg-type]
        seen.append(conn is not None)
        return conn

    monkeypatch.setattr(postgres.PostgresConnection, "_helper", commit_then_help)
    odd = Streamed(BOTH.replace("FROM t", "FROM t WHERE n % 2 = 1"))
    even = Streamed(BOTH.replace("FROM t", "FROM t WHERE n % 2 = 0"))
    written = await copy(table, tmp_path, pool_size, odd, even)
    assert seen == [pool_size > 1]  # side by side only when a connection was free
    assert written == {"x": 5000, "y": 5000}
    x = rows(tmp_path / "x.csv")
    assert x[0] == ["n"]
    assert sorted(int(r[0]) for r in x[1:]) == list(range(1, 5001))  # no 0: not in the snapshot
    y = rows(tmp_path / "y.csv")
    assert y[0] == ["n", "text"]
    assert sorted((int(r[0]), r[1]) for r in y[1:]) == [
        (n, f'row {n},\n"quoted"') for n in range(1, 5001)
    ]


async def test_long_values_reach_the_statements_as_settings(table: str, tmp_path: Path) -> None:
    """A megabyte of text, quotes and backslashes included, read back by each statement from
    its settings, on its own connection; the statement's text never holds it."""
    value = ('a"b\\c,' * 200_000)[:1_000_000]
    read = (
        "SELECT 'x' AS part, CAST(length(current_setting('orderguard.v')) AS TEXT) AS c1, "
        "NULL AS c2 UNION ALL SELECT 'y', md5(current_setting('orderguard.v')), "
        "(SELECT CAST(count(*) AS TEXT) FROM pg_stat_activity "
        "WHERE strpos(query, left(current_setting('orderguard.v'), 60)) > 0)"
    )
    settings = {"orderguard.v": value}
    written = await copy(
        table, tmp_path, 3, Streamed(read, {}, settings), Streamed(read, {}, settings)
    )
    assert written == {"x": 2, "y": 2}
    assert [r[0] for r in rows(tmp_path / "x.csv")[1:]] == [str(len(value))] * 2
    digest = hashlib.md5(value.encode()).hexdigest()
    assert rows(tmp_path / "y.csv")[1:] == [[digest, "0"], [digest, "0"]]


async def test_statements_streamed_together_begin_their_transaction(
    table: str, tmp_path: Path
) -> None:
    db = await connect(table, pool_size=3)
    try:
        async with db.transaction(write=False) as tx:
            await tx.conn.fetchone("SELECT 1")
            with pytest.raises(StorageError, match="begin their transaction"):
                await tx.conn.copy_csv([Streamed(BOTH), Streamed(BOTH)], parts(tmp_path))
    finally:
        await db.close()


#: A statement that would stream for many minutes, and one that fails at once.
ENDLESS = (
    "SELECT 'x' AS part, CAST(n AS TEXT) AS c1, NULL AS c2 FROM generate_series(1, 2000000000) n"
)
FAILING = (
    "SELECT 'x' AS part, CAST(1 / (SELECT count(*) - count(*) FROM t) AS TEXT) AS c1, NULL AS c2"
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("failing_first", [True, False])
async def test_a_failing_statement_stops_the_others_on_the_server(
    table: str, tmp_path: Path, failing_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error of one statement is raised as soon as it happens, whichever connection runs
    it: the other statement is cancelled on the server (not left to stream for minutes),
    and the pool goes on serving."""
    statements = [Streamed(FAILING), Streamed(ENDLESS)]
    if not failing_first:
        statements.reverse()
    # Side by side, however loaded the machine: a helper connection is waited for.
    monkeypatch.setattr(postgres, "_HELPER_WAIT", 30.0)
    helper = postgres.PostgresConnection._helper
    helped: list[bool] = []

    async def counted(self: postgres.PostgresConnection, *args: object) -> object:
        conn = await helper(self, *args)  # type: ignore[arg-type]
        helped.append(conn is not None)
        return conn

    monkeypatch.setattr(postgres.PostgresConnection, "_helper", counted)
    db = await connect(table, pool_size=3)
    try:
        with pytest.raises(StorageError, match="division by zero"):
            async with db.transaction(write=False) as tx:
                await tx.conn.copy_csv(statements, parts(tmp_path))
        assert helped == [True]
        with psycopg.connect(table, autocommit=True) as admin:
            for _ in range(100):  # the cancel request is asynchronous
                running = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND datname = current_database() "
                    "AND strpos(query, 'generate_series(1, 2000000000)') > 0 "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()
                if running == (0,):
                    break
                await asyncio.sleep(0.1)
        assert running == (0,)
        odd = Streamed(BOTH.replace("FROM t", "FROM t WHERE n % 2 = 1"))
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([odd, odd], parts(tmp_path))
        assert written == {"x": 5000, "y": 5000}
    finally:
        await db.close()


async def test_streamed_statements_may_hash_what_a_month_names(table: str, tmp_path: Path) -> None:
    """Each statement, on its own connection or not, runs with the memory to hash the
    references of a month's report (a ``NOT IN`` list PostgreSQL hashes only while it fits;
    past that it reads the list again for every row), whatever the database's default,
    and without parallel workers."""
    name = table.rsplit("/", 1)[1]
    with psycopg.connect(table, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{name}\" SET work_mem = '64kB'")
    settings = (
        "SELECT 'y' AS part, current_setting('work_mem') AS c1, "
        "current_setting('max_parallel_workers_per_gather') AS c2"
    )
    for pool_size in (3, 1):
        written = await copy(table, tmp_path, pool_size, Streamed(settings), Streamed(settings))
        assert written == {"x": 0, "y": 2}
        assert rows(tmp_path / "y.csv")[1:] == [[postgres.COPY_WORK_MEM, "0"]] * 2


async def test_rows_read_in_batches_reach_their_files_once(
    table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows libpq holds are read several at a time: whatever the batch's size, each row
    reaches its file once, whole, and the connection is usable after the copy."""
    monkeypatch.setattr(postgres, "_ROWS_PER_READ", 7)
    batches: list[int] = []
    buffered = postgres._buffered_rows

    def counted(pgconn: object) -> object:
        found = yield from buffered(pgconn)  # type: ignore[arg-type]
        batches.append(len(found[0]))
        return found

    monkeypatch.setattr(postgres, "_buffered_rows", counted)
    db = await connect(table, pool_size=1)
    try:
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([Streamed(BOTH)], parts(tmp_path))
            after = await tx.conn.fetchone("SELECT count(*) AS n FROM t")
    finally:
        await db.close()
    assert written == {"x": 5000, "y": 5000}
    assert after == {"n": 5000}
    # several rows a wake-up, never more than the batch
    assert sum(batches) == 10000 and max(batches) == 7
    assert sorted(int(n) for [n] in rows(tmp_path / "x.csv")[1:]) == list(range(1, 5001))
    ys = rows(tmp_path / "y.csv")[1:]
    assert sorted(int(n) for n, _ in ys) == list(range(1, 5001))
    assert all(text == f'row {n},\n"quoted"' for n, text in ys)


async def test_the_rows_read_with_the_end_of_the_copy_are_kept(table: str, tmp_path: Path) -> None:
    """A short result arrives whole, its end with it: the rows read in the same call as the
    end reach their files too."""
    few = Streamed(BOTH.replace("FROM t", "FROM t WHERE n <= 3"))
    db = await connect(table, pool_size=1)
    try:
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([few], parts(tmp_path))
    finally:
        await db.close()
    assert written == {"x": 3, "y": 3}
    assert rows(tmp_path / "x.csv") == [["n"], ["1"], ["2"], ["3"]]


async def test_a_statement_failing_after_its_first_rows_raises_its_error(
    table: str, tmp_path: Path
) -> None:
    """A statement that fails once thousands of its rows were sent raises the server's error
    (not a row short), and the pool goes on serving."""
    failing = Streamed(
        "SELECT 'x' AS part, CAST(1000000 / (n - 4000) AS TEXT) AS c1, NULL AS c2 "
        "FROM generate_series(1, 5000) n"
    )
    db = await connect(table, pool_size=1)
    try:
        with pytest.raises(StorageError, match="division by zero"):
            async with db.transaction(write=False) as tx:
                await tx.conn.copy_csv([failing], parts(tmp_path))
        # rows came before the error: the client read part of the stream, not nothing
        assert len(rows(tmp_path / "x.csv")) > 1
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([Streamed(BOTH)], parts(tmp_path))
        assert written == {"x": 5000, "y": 5000}
    finally:
        await db.close()


@pytest.mark.parametrize("rows_before", [0, 3000])
async def test_an_error_handling_the_rows_is_raised_as_it_is(
    table: str, tmp_path: Path, rows_before: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A row the caller cannot take (here a part nobody asked for; a full disk would do the
    same) raises its own error, not a broken connection's, whether it comes among the first
    rows or with the end of the copy; the connection is not left busy."""
    stray = Streamed(
        f"SELECT 'x' AS part, CAST(n AS TEXT) AS c1, NULL AS c2 FROM t WHERE n <= {rows_before} "
        "UNION ALL SELECT 'z', '1', NULL"
    )
    db = await connect(table, pool_size=1)
    try:
        with pytest.raises(KeyError):
            async with db.transaction(write=False) as tx:
                await tx.conn.copy_csv([stray], parts(tmp_path))
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([Streamed(BOTH)], parts(tmp_path))
        assert written == {"x": 5000, "y": 5000}
    finally:
        await db.close()
    assert not [r for r in caplog.records if r.levelname in {"WARNING", "ERROR"}], [
        r.getMessage() for r in caplog.records
    ]


async def test_a_copy_cancelled_mid_stream_leaves_the_pool_serving(
    table: str, tmp_path: Path
) -> None:
    """Cancelled while rows stream, the copy raises the cancellation and its connection is
    closed (``copy_csv`` closes a connection it interrupted): the pool of one replaces it
    and serves the next copy."""
    db = await connect(table, pool_size=1)
    try:

        async def endless() -> None:
            async with db.transaction(write=False) as tx:
                await tx.conn.copy_csv([Streamed(ENDLESS)], parts(tmp_path))

        task = asyncio.create_task(endless())
        await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.transaction(write=False) as tx:
            written = await tx.conn.copy_csv([Streamed(BOTH)], parts(tmp_path))
        assert written == {"x": 5000, "y": 5000}
    finally:
        await db.close()
