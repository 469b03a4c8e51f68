"""What only the SQL back ends promise: append-only history and versioned migrations."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.database import transaction
from orderguard.storage.errors import AppendOnlyViolation
from tests.conftest import open_storage
from tests.factories import new_order

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE timeline SET note = 'rewritten'",
        "DELETE FROM timeline",
        "DELETE FROM orders",
    ],
)
async def test_history_and_orders_cannot_be_rewritten_or_deleted(url: str, statement: str) -> None:
    storage = await open_storage(url)
    try:
        order = new_order()
        async with storage() as uow:
            await uow.orders.add(order)
            await uow.commit()
        with pytest.raises(AppendOnlyViolation):
            async with transaction(storage.db) as conn:
                await conn.execute(statement)
        async with storage() as uow:
            assert await uow.orders.get(order.id) is not None
            assert [e.note for e in await uow.orders.timeline(order.id)] == ["order received"]
    finally:
        await storage.close()


async def test_migrations_are_versioned_idempotent_and_safe_to_run_concurrently(
    url: str, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":  # pg_url is already migrated: start from an empty database
        url = await _empty_pg_database(request)
    dbs = [await connect(url, pool_size=2) for _ in range(3)]
    try:
        assert await migrate.current_version(dbs[0]) == 0
        with pytest.raises(migrate.SchemaBehind, match="orderguard migrate"):
            await migrate.ensure_current(dbs[0])
        results = await asyncio.gather(*(migrate.migrate(db) for db in dbs))
        # every migration applied exactly once, whichever process got to it first
        applied = sorted(m.version for done in results for m in done)
        assert applied == [m.version for m in migrate.available()]
        assert await migrate.current_version(dbs[0]) == migrate.latest_version()
        await migrate.ensure_current(dbs[1])
        assert await migrate.migrate(dbs[2]) == []
    finally:
        for db in dbs:
            await db.close()


async def _empty_pg_database(request: pytest.FixtureRequest) -> str:
    import uuid

    from tests.conftest import _admin, _pg_url

    name = f"og_test_empty_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return _pg_url(name)
