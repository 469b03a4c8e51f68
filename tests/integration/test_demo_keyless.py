"""The demo's audit reads a run's orders placed without a merchant reference through the
shopper's email, which names the checkout, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orderguard.demo import audit
from orderguard.domain.order import Order, OrderLine
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import customer


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[SqlStorage]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    sql = await open_storage(url)
    try:
        yield sql
    finally:
        await sql.close()


def _order(email: str, reference: str | None = None) -> Order:
    return Order.place(
        currency="EUR",
        lines=[OrderLine("TEE-M", "T-shirt", 1, 1999)],
        customer=replace(customer(), email=email),
        at=datetime.now(UTC),
        merchant_reference=reference,
    )


async def test_a_runs_orders_without_reference_are_found_by_the_checkout_their_email_names(
    storage: SqlStorage,
) -> None:
    run = f"DEMO-{datetime.now(UTC).strftime('%H%M%S%f')}-"
    keyless = _order(f"{run.lower()}00001@example.com")
    twin = _order(f"{run.lower()}00001@example.com")  # a second order for that checkout
    referenced = _order(f"{run.lower()}00002@example.com", reference=f"{run}00002")
    other_run = _order("demo-otherrun-00001@example.com")
    async with storage() as uow:
        for order in (keyless, twin, referenced, other_run):
            await uow.orders.add(order)
        await uow.commit()

    snapshot = await audit.snapshot(storage.db, run)

    assert set(snapshot.orders) == {keyless.id, twin.id, referenced.id}
    checkouts = {o.id: o.checkout for o in snapshot.orders.values()}
    assert checkouts[keyless.id] == checkouts[twin.id] == f"{run.lower()}00001"
    assert checkouts[referenced.id] == f"{run.lower()}00002"
    assert snapshot.timeline_disagrees == []
