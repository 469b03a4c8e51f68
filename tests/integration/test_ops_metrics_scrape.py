"""What a ``/metrics`` scrape costs the database: the statements it sends, counted on a real
PostgreSQL connection, one refresh shared by concurrent scrapes, and how stale a cached
reading may be."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.domain.schedule import RecheckSchedule
from orderguard.domain.states import OrderState
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.hooks import RecordedExceptionCounts, RelayOutbox
from orderguard.storage.connect import connect
from orderguard.storage.database import Connection, Database, Params, Row, Transaction
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import new_order

NOW = datetime.now(UTC)
SCHEDULE = RecheckSchedule()

#: One scrape with the relay's one sink (``stream``) and no webhook endpoint: the gauges (1),
#: the active endpoints (1), the dead letters (1), the sink's floor and its two waiting
#: counts (3), the recorded and the open reconciliation exceptions (2).
STATEMENTS_PER_SCRAPE = 8
#: The gauges, the relay's sinks and records, reconciliation's.
TRANSACTIONS_PER_SCRAPE = 3


class Counted(Database):
    """A real database whose transactions and statements are counted as they are sent."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect = db.dialect
        self.statements: list[str] = []
        self.transactions = 0

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        return self._counted(write)

    @asynccontextmanager
    async def _counted(self, write: bool) -> AsyncIterator[Transaction]:
        async with self._db.transaction(write=write) as tx:
            self.transactions += 1
            yield _CountedTransaction(tx, self)

    async def close(self) -> None:
        await self._db.close()

    def reset(self) -> None:
        self.statements.clear()
        self.transactions = 0


class _CountedTransaction(Transaction):
    def __init__(self, tx: Transaction, log: Counted) -> None:
        self._tx = tx
        self.conn = _CountedConnection(tx.conn, log)

    async def commit(self) -> None:
        await self._tx.commit()


class _CountedConnection(Connection):
    def __init__(self, conn: Connection, log: Counted) -> None:
        self._conn = conn
        self._log = log

    async def execute(self, sql: str, params: Params | None = None) -> int:
        self._log.statements.append(sql)
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        self._log.statements.extend(sql for _ in rows)
        return await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        self._log.statements.append(sql)
        return await self._conn.fetchall(sql, params)

    def batch(self) -> AbstractAsyncContextManager[None]:
        return self._conn.batch()

    async def execute_script(self, script: str) -> None:
        self._log.statements.append(script)
        await self._conn.execute_script(script)


@pytest.fixture
async def counted(pg_url: str) -> AsyncIterator[tuple[SqlStorage, Counted]]:
    await (await open_storage(pg_url)).close()  # migrated
    db = Counted(await connect(pg_url, pool_size=6))
    storage = SqlStorage(db)
    try:
        yield storage, db
    finally:
        await storage.close()


def _collector(
    storage: SqlStorage,
    url: str,
    *,
    ttl_s: float,
    clock: Callable[[], float] = time.monotonic,
    shared: Path | None = None,
) -> DatabaseCollector:
    """The collector as ``serve`` builds it, with the relay's ``stream`` sink switched on."""
    settings = Settings.load(
        {"ORDERGUARD_DATABASE_URL": url, "ORDERGUARD_NATS_URL": "nats://127.0.0.1:4222"}
    )
    return DatabaseCollector(
        storage.stats,
        watched=SCHEDULE.watched,
        shortest_wait=SCHEDULE.shortest_wait,
        outbox=RelayOutbox(settings, storage),
        reconciliation=RecordedExceptionCounts(storage),
        ttl_s=ttl_s,
        clock=clock,
        shared=shared,
    )


def _paid(text: bytes) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "orderguard_orders" and sample.labels == {"state": "paid"}:
                return float(sample.value)
    raise AssertionError("no orderguard_orders{state=paid} sample")


async def _add_paid(storage: SqlStorage) -> None:
    order = new_order(at=NOW)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW)
    order.move_to(OrderState.PAID, cause=Cause.API, at=NOW)
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()


async def _read(storage: SqlStorage) -> None:
    await storage.stats.read(
        now=NOW, watched=SCHEDULE.watched, shortest_wait=SCHEDULE.shortest_wait
    )


@pytest.mark.postgres
async def test_the_database_gauges_are_one_statement_in_one_transaction(
    counted: tuple[SqlStorage, Counted],
) -> None:
    storage, db = counted
    await _read(storage)  # the first reading also asks the table's size once
    db.reset()
    await _read(storage)
    assert db.transactions == 1
    assert len(db.statements) == 1, db.statements
    # the webhook ledger is folded by that same statement
    assert db.statements[0].startswith("WITH gone AS (DELETE FROM webhook_tallies")


@pytest.mark.postgres
async def test_a_scrape_sends_a_bounded_number_of_statements(
    counted: tuple[SqlStorage, Counted], pg_url: str
) -> None:
    storage, db = counted
    collector = _collector(storage, pg_url, ttl_s=0.0)
    await collector.text(NOW)
    for _ in range(3):
        db.reset()
        await collector.text(NOW)
        assert len(db.statements) == STATEMENTS_PER_SCRAPE, db.statements
        assert db.transactions == TRANSACTIONS_PER_SCRAPE


@pytest.mark.postgres
async def test_concurrent_scrapes_share_one_refresh(
    counted: tuple[SqlStorage, Counted], pg_url: str
) -> None:
    storage, db = counted
    await _read(storage)
    await _add_paid(storage)
    collector = _collector(storage, pg_url, ttl_s=60.0)
    db.reset()
    texts = await asyncio.gather(*(collector.text(NOW) for _ in range(10)))
    assert len(db.statements) == STATEMENTS_PER_SCRAPE, "ten scrapes, one reading"
    assert db.transactions == TRANSACTIONS_PER_SCRAPE
    assert {_paid(text) for text in texts} == {1.0}


@pytest.mark.postgres
async def test_a_reading_is_reused_for_the_ttl_and_never_longer(
    counted: tuple[SqlStorage, Counted], pg_url: str
) -> None:
    storage, db = counted
    clock = [1000.0]
    collector = _collector(storage, pg_url, ttl_s=5.0, clock=lambda: clock[0])
    assert _paid(await collector.text(NOW)) == 0
    await _add_paid(storage)
    clock[0] += 4.99
    db.reset()
    assert _paid(await collector.text(NOW)) == 0, "within the ttl: the cached reading"
    assert db.statements == []
    clock[0] += 0.01
    assert _paid(await collector.text(NOW)) == 1, "at the ttl: a new reading"
    assert len(db.statements) == STATEMENTS_PER_SCRAPE


@pytest.mark.postgres
async def test_a_read_only_database_is_not_asked_to_fold_on_every_scrape(pg_url: str) -> None:
    await (await open_storage(pg_url)).close()
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    db = Counted(await connect(pg_url, pool_size=2))
    storage = SqlStorage(db)
    try:
        await _read(storage)  # the size, the refused fold, the reading without it
        assert len(db.statements) == 3, db.statements
        db.reset()
        await _read(storage)
        assert len(db.statements) == 1, "no fold tried again before FOLD_RETRY_S"
        assert not db.statements[0].startswith("WITH gone")
    finally:
        await storage.close()


@pytest.mark.postgres
async def test_processes_sharing_a_folder_read_the_database_once_per_ttl(
    counted: tuple[SqlStorage, Counted], pg_url: str, tmp_path: Path
) -> None:
    """Two API processes (two collectors, each with its own lock and cache) sharing the
    multi-process folder: scraped at once and in turn, one reading per ttl between them."""
    storage, db = counted
    await _read(storage)
    clock = [1000.0]
    first, second = (
        _collector(storage, pg_url, ttl_s=5.0, clock=lambda: clock[0], shared=tmp_path)
        for _ in range(2)
    )
    db.reset()
    texts = await asyncio.gather(*(c.text(NOW) for c in (first, second) for _ in range(5)))
    assert len(db.statements) == STATEMENTS_PER_SCRAPE, "ten scrapes of two processes"
    assert len(set(texts)) == 1
    await _add_paid(storage)
    clock[0] += 4.99
    db.reset()
    assert _paid(await second.text(NOW)) == _paid(await first.text(NOW)) == 0
    assert db.statements == [], "within the ttl: the shared reading"
    clock[0] += 0.01
    assert _paid(await second.text(NOW)) == 1, "at the ttl: a new reading"
    assert _paid(await first.text(NOW)) == 1, "the other process's reading"
    assert len(db.statements) == STATEMENTS_PER_SCRAPE


async def test_an_unusable_shared_folder_leaves_each_process_reading_alone(
    sqlite_url: str, tmp_path: Path
) -> None:
    storage = await open_storage(sqlite_url)
    try:
        await _add_paid(storage)
        collector = _collector(storage, sqlite_url, ttl_s=5.0, shared=tmp_path / "missing")
        assert _paid(await collector.text(NOW)) == 1
    finally:
        await storage.close()
