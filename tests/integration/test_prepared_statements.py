"""A connection keeps its prepared statements when a transaction that only read ends
without a commit (``storage.postgres._roll_back``).

psycopg prepares a statement on a connection after its fifth use there, and forgets every
prepared statement of the connection at any ``ROLLBACK`` (``DEALLOCATE ALL``). The worker's
duties read in units of work they leave without committing whenever they find nothing to
do, so under load each of them cost the pooled connection it used five more parses and
plans of every hot statement. What is asked of the server here is its own list of the
session's prepared statements (``pg_prepared_statements``), on the pool's one connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orderguard.domain.states import OrderState
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.intake import Intake, PlaceOrder
from orderguard.storage.database import transaction
from orderguard.storage.errors import StorageError
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import customer, new_order

pytestmark = pytest.mark.postgres

AT = datetime(2026, 12, 6, 12, tzinfo=UTC)
#: More uses than psycopg's default threshold (5) before it prepares a statement.
USES = 8


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[SqlStorage]:
    storage = await open_storage(pg_url, pool_size=1)  # one connection: the one asked
    try:
        yield storage
    finally:
        await storage.close()


async def _prepared(pg: SqlStorage) -> list[str]:
    """The statements the pool's connection has prepared, as the server lists them."""
    async with transaction(pg.db, write=False) as conn:
        rows = await conn.fetchall("SELECT statement FROM pg_prepared_statements")
    return [str(row["statement"]) for row in rows]


async def _place_orders(pg: SqlStorage, first: int) -> None:
    intake = Intake(pg, lambda order: order.id.encode(), clock=lambda: AT)
    for n in range(first, first + USES):
        await intake.place(
            PlaceOrder(
                request=KeyedRequest("test", f"key-{n}", f"fp-{n}"),
                currency="EUR",
                lines=list(new_order().lines),
                customer=customer(),
                merchant_reference=f"PREP-{n}",
            )
        )


def _intake_statements(prepared: list[str]) -> list[str]:
    return [sql for sql in prepared if "INSERT INTO idempotency_keys" in sql]


async def test_a_read_left_without_commit_keeps_the_prepared_statements(pg: SqlStorage) -> None:
    await _place_orders(pg, 0)
    before = _intake_statements(await _prepared(pg))
    assert len(before) == 1  # the intake's one statement, prepared after its fifth use

    async with pg() as uow:  # a duty that looks for work, finds none and leaves
        found = await uow.orders.in_state(OrderState.ACTION_REQUIRED, updated_before=AT, limit=5)
    assert found == []
    async with pg.reader() as uow:
        assert await uow.orders.find_by_reference("PREP-none") is None

    assert _intake_statements(await _prepared(pg)) == before


async def test_writes_left_without_commit_are_rolled_back_all_the_same(pg: SqlStorage) -> None:
    await _place_orders(pg, 0)
    async with transaction(pg.db) as conn:
        kept = (await conn.fetchall("SELECT COUNT(*) AS n FROM orders"))[0]["n"]
    async with pg.db.transaction() as tx:  # deleted, then left without a commit
        await tx.conn.execute("DELETE FROM idempotency_keys")
        gone = await tx.conn.fetchall("SELECT COUNT(*) AS n FROM idempotency_keys")
        assert gone[0]["n"] == 0
    async with transaction(pg.db, write=False) as conn:
        keys = (await conn.fetchall("SELECT COUNT(*) AS n FROM idempotency_keys"))[0]["n"]
    assert kept == USES
    assert keys == USES
    assert len(_intake_statements(await _prepared(pg))) == 1


async def test_a_script_or_a_failure_rolled_back_forgets_them_as_psycopg_does(
    pg: SqlStorage,
) -> None:
    # a script may reshape a table a prepared statement reads: nothing prepared survives it
    # (a CREATE, which psycopg does not itself take for a reason to forget them)
    await _place_orders(pg, 0)
    assert _intake_statements(await _prepared(pg))
    async with pg.db.transaction() as tx:
        await tx.conn.execute_script("CREATE TABLE scratch (x INTEGER)")
    assert _intake_statements(await _prepared(pg)) == []
    async with transaction(pg.db, write=False) as conn:  # and the table is not there
        tables = await conn.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_name = 'scratch'"
        )
    assert tables == []

    # a transaction in error is rolled back by psycopg itself
    await _place_orders(pg, USES)
    assert _intake_statements(await _prepared(pg))
    with pytest.raises(StorageError):
        async with pg.db.transaction() as tx:
            await tx.conn.fetchall("SELECT 1 / 0 AS never FROM orders")
    assert _intake_statements(await _prepared(pg)) == []
    await _place_orders(pg, 2 * USES)  # and the connection goes on serving
    assert len(_intake_statements(await _prepared(pg))) == 1
