"""G1: an acknowledged order survives crashes and power loss only if the database really
writes it to disk at commit. These tests read the settings back from every connection the
storage opens, so a faster but unsafe setting cannot slip in unnoticed."""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.database import Connection, Database
from orderguard.storage.errors import StorageError
from orderguard.storage.sqlite import POOL_SIZE

#: SQLite's number for ``synchronous=FULL`` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
SQLITE_FULL = 2


async def _pooled_connections(stack: AsyncExitStack, db: Database, count: int) -> list[Connection]:
    """``count`` read transactions held open at once, so each one is a different connection."""
    return [
        (await stack.enter_async_context(db.transaction(write=False))).conn for _ in range(count)
    ]


async def _value(conn: Connection, sql: str) -> object:
    row = await conn.fetchone(sql)
    assert row is not None
    return next(iter(row.values()))


async def test_every_sqlite_connection_syncs_fully_in_wal_with_foreign_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "durable.db"
    db = await connect(f"sqlite:///{path}")
    try:
        async with AsyncExitStack() as stack:
            conns = await _pooled_connections(stack, db, POOL_SIZE)
            settings = [
                (
                    await _value(conn, "PRAGMA synchronous"),
                    str(await _value(conn, "PRAGMA journal_mode")).lower(),
                    await _value(conn, "PRAGMA foreign_keys"),
                )
                for conn in conns
            ]
    finally:
        await db.close()
    assert settings == [(SQLITE_FULL, "wal", 1)] * POOL_SIZE
    with sqlite3.connect(path) as raw:  # WAL is a property of the file: it stays
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_refuses_a_row_whose_parent_is_missing(tmp_path: Path) -> None:
    db = await connect(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        await migrate.migrate(db)
        async with db.transaction() as tx:
            with pytest.raises(StorageError, match="FOREIGN KEY"):
                await tx.conn.execute(
                    "INSERT INTO timeline (id, order_id, at, kind, to_state, cause, note) "
                    "VALUES ('tle_x', 'ord_missing', '2026-01-01T00:00:00+00:00', 'note', "
                    "'received', 'api', '')"
                )
    finally:
        await db.close()


async def test_every_postgresql_session_commits_synchronously(pg_url: str) -> None:
    db = await connect(pg_url, pool_size=3)
    try:
        async with AsyncExitStack() as stack:
            conns = await _pooled_connections(stack, db, 3)
            values = [await _value(conn, "SHOW synchronous_commit") for conn in conns]
    finally:
        await db.close()
    # "off" acknowledges a commit before its WAL reaches disk: a crash may lose the order
    assert values and all(v in {"on", "remote_apply", "remote_write", "local"} for v in values)
    assert "off" not in values


async def test_a_database_set_to_commit_asynchronously_still_commits_synchronously(
    pg_url: str,
) -> None:
    """A careless ``ALTER DATABASE … SET synchronous_commit = off`` (a common "speed-up")
    must not weaken G1: orderguard sets it back on for every session it opens."""
    from tests.conftest import _admin

    name = pg_url.rsplit("/", 1)[1]
    with _admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    db = await connect(pg_url, pool_size=3)
    try:
        async with AsyncExitStack() as stack:
            conns = await _pooled_connections(stack, db, 3)
            values = [await _value(conn, "SHOW synchronous_commit") for conn in conns]
    finally:
        await db.close()
    assert values == ["on", "on", "on"]
