"""Migration 7 turns each order's single ``flag_reason`` into an open review flag, with its
reason read from the words, who raised it and when read from the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain import ids
from orderguard.domain.flags import FlagReason
from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.database import Database, transaction
from orderguard.storage.ports import OrderQuery
from orderguard.storage.unit_of_work import SqlStorage
from tests.integration.test_sql_storage import _empty_pg_database

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
REPORTED_AT = T0 + timedelta(hours=2)
MISMATCH = "reconciliation: amount_mismatch (report.csv:3): report 40.00 EUR, order 48.48 EUR"
PARCEL = "shopper reported a problem: where is my parcel?"
LEGACY = "janitor gave up"


@pytest.fixture(params=["sqlite", "postgresql"])
async def version_6(request: pytest.FixtureRequest) -> Database:
    """A database at schema version 6, as the last release left it."""
    if request.param == "sqlite":
        url = str(request.getfixturevalue("sqlite_url"))
    else:
        url = await _empty_pg_database(request)
    db = await connect(url, pool_size=2)
    await migrate.current_version(db)  # creates the versions table
    for migration in (m for m in migrate.available() if m.version <= 6):
        async with transaction(db) as conn:
            await conn.execute_script(migration.script(db.dialect))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :a)",
                {"v": migration.version, "n": migration.name, "a": T0.isoformat()},
            )
    return db


async def _stored_with_flag(db: Database, flag_reason: str | None) -> str:
    """An order as version 6 wrote it (its columns only): its flag is ``flag_reason``."""
    order_id = ids.new_id("ord")
    async with transaction(db) as conn:
        await conn.execute(
            "INSERT INTO orders (id, state, currency, amount_total, customer_email, "
            "customer_name, ship_line1, ship_city, ship_postal_code, ship_country, locale, "
            "status_token, flag_reason, version, created_at, updated_at) VALUES (:id, "
            "'received', 'EUR', 1000, 'ana@example.com', 'Ana', 'Main St 1', 'Berlin', "
            "'10115', 'DE', 'en', :token, :reason, 1, :at, :at)",
            {"id": order_id, "token": ids.new_id("tok"), "reason": flag_reason, "at": T0},
        )
        await conn.execute(
            "INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_amount) "
            "VALUES (:id, 0, 'SKU-1', 'Mug', 1, 1000)",
            {"id": order_id},
        )
    return order_id


async def test_migration_7_turns_each_flag_reason_into_an_open_flag(version_6: Database) -> None:
    db = version_6
    try:
        mismatch = await _stored_with_flag(db, MISMATCH)
        parcel = await _stored_with_flag(db, PARCEL)
        legacy = await _stored_with_flag(db, LEGACY)
        clean = await _stored_with_flag(db, None)
        async with transaction(db) as conn:
            await conn.execute(
                "INSERT INTO timeline (id, order_id, at, kind, from_state, to_state, cause, "
                "actor, note) VALUES ('tle_x', :id, :at, 'flagged', 'received', 'received', "
                "'shopper', NULL, :note)",
                {"id": parcel, "at": REPORTED_AT, "note": PARCEL},
            )

        assert 7 in [m.version for m in await migrate.migrate(db)]

        async with SqlStorage(db)() as uow:
            orders = {i: await uow.orders.get(i) for i in (mismatch, parcel, legacy, clean)}
            queue = await uow.orders.search(OrderQuery(limit=10, flagged=True))
        flags = {
            i: [(f.reason, f.detail, f.raised_by, f.raised_at, f.is_open) for f in o.flags]
            for i, o in orders.items()
            if o is not None
        }
        assert flags == {
            mismatch: [
                (
                    FlagReason.RECONCILIATION_AMOUNT_MISMATCH,
                    "amount_mismatch (report.csv:3): report 40.00 EUR, order 48.48 EUR",
                    "orderguard",
                    T0,
                    True,
                )
            ],
            parcel: [
                (FlagReason.SHOPPER_REPORT, "where is my parcel?", "shopper", REPORTED_AT, True)
            ],
            legacy: [(FlagReason.OTHER, LEGACY, "orderguard", T0, True)],
            clean: [],
        }
        texts = {i: o.flag_reason for i, o in orders.items() if o is not None}
        assert texts == {mismatch: MISMATCH, parcel: PARCEL, legacy: LEGACY, clean: None}
        assert sorted(o.id for o in queue) == sorted([mismatch, parcel, legacy])
    finally:
        await db.close()
