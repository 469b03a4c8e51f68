"""The SQL unit of work: one transaction, every repository on its connection."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType

from orderguard.storage.console import SqlConsoleStore
from orderguard.storage.database import Database, Transaction
from orderguard.storage.endpoints import SqlEndpointRepository
from orderguard.storage.keys import SqlApiKeyRepository, SqlIdempotencyRepository
from orderguard.storage.ops_stats import SqlOpsStats
from orderguard.storage.orders import SqlOrderRepository
from orderguard.storage.outbox import SqlOutboxRepository
from orderguard.storage.reconciliation import SqlReconciliationRepository
from orderguard.storage.recovery import (
    SqlFindingRepository,
    SqlLeaseRepository,
    SqlWebhookRepository,
)
from orderguard.storage.shopper_rows import SqlShopperRows

#: How each dialect locks a row read with ``for_update`` (SQLite locks on BEGIN IMMEDIATE).
_LOCK_CLAUSE = {"postgresql": " FOR UPDATE", "sqlite": ""}
#: How each dialect claims rows other workers are not claiming (SQLite has one writer).
_SKIP_LOCKED = {"postgresql": " FOR UPDATE SKIP LOCKED", "sqlite": ""}


class SqlUnitOfWork:
    """A transaction on SQLite or PostgreSQL."""

    orders: SqlOrderRepository
    idempotency: SqlIdempotencyRepository
    api_keys: SqlApiKeyRepository
    leases: SqlLeaseRepository
    webhooks: SqlWebhookRepository
    findings: SqlFindingRepository
    reconciliations: SqlReconciliationRepository
    outbox: SqlOutboxRepository
    endpoints: SqlEndpointRepository

    def __init__(self, db: Database, *, write: bool = True) -> None:
        self._db = db
        self._write = write
        self._context: AbstractAsyncContextManager[Transaction] | None = None
        self._tx: Transaction | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        self._context = self._db.transaction(write=self._write)
        self._tx = await self._context.__aenter__()
        conn = self._tx.conn
        skip = _SKIP_LOCKED[self._db.dialect]
        self.orders = SqlOrderRepository(
            conn,
            lock_clause=_LOCK_CLAUSE[self._db.dialect],
            skip_locked=skip,
            one_statement=self._db.dialect == "postgresql",
        )
        self.idempotency = SqlIdempotencyRepository(conn, self.orders)
        self.api_keys = SqlApiKeyRepository(conn)
        self.leases = SqlLeaseRepository(conn, skip_locked=skip)
        self.webhooks = SqlWebhookRepository(conn, skip_locked=skip)
        self.findings = SqlFindingRepository(conn)
        self.reconciliations = SqlReconciliationRepository(conn)
        self.outbox = SqlOutboxRepository(
            conn, lock_clause=_LOCK_CLAUSE[self._db.dialect], skip_locked=skip
        )
        self.endpoints = SqlEndpointRepository(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._context is not None
        await self._context.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()


class SqlStorage:
    """Opens SQL units of work on one database; what the application is wired to."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.console = SqlConsoleStore(db)
        self.stats = SqlOpsStats(db)
        self.shopper_rows = SqlShopperRows(db)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db)

    def reader(self) -> SqlUnitOfWork:
        """A unit of work that only reads (no write lock on SQLite)."""
        return SqlUnitOfWork(self.db, write=False)

    async def close(self) -> None:
        await self.db.close()
