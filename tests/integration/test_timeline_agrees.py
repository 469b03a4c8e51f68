"""G7's end-to-end check and the demo's ``timeline_disagrees_with_state`` invariant fire on
an order whose state was changed behind its timeline's back (a direct SQL update), on
SQLite and PostgreSQL, and stay quiet while state and timeline agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orderguard.demo import audit
from orderguard.demo.shoppers import Checkout, ShopperStats
from orderguard.domain.events import Cause
from orderguard.domain.states import OrderState
from orderguard.storage.database import transaction
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.e2e.timeline_check import disagreements, timelines_checked
from tests.factories import new_order

PREFIX = "G7-"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(name)
    return value


@pytest.fixture
async def storage(url: str) -> AsyncIterator[SqlStorage]:
    sql = await open_storage(url)
    try:
        yield sql
    finally:
        await sql.close()


async def _orders(storage: SqlStorage) -> tuple[str, str, str]:
    """A received order, a pending one, and one placed without a merchant reference."""
    received, pending, bare = (
        new_order(reference=f"{PREFIX}1"),
        new_order(reference=f"{PREFIX}2"),
        new_order(),
    )
    pending.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=datetime.now(UTC))
    async with storage() as uow:
        for order in (received, pending, bare):
            await uow.orders.add(order)
        await uow.commit()
    return received.id, pending.id, bare.id


async def _set_state_behind_the_timeline(storage: SqlStorage, order_id: str, state: str) -> None:
    async with storage.db.transaction() as tx:
        await tx.conn.execute(
            "UPDATE orders SET state = :state WHERE id = :id", {"state": state, "id": order_id}
        )
        await tx.commit()


async def test_orders_whose_state_is_their_last_state_change_pass(
    url: str, storage: SqlStorage
) -> None:
    await _orders(storage)
    with timelines_checked(url):
        pass
    assert disagreements(url) == []
    async with transaction(storage.db, write=False) as conn:
        assert await conn.fetchall(audit.TIMELINE_DISAGREES) == []


async def test_the_end_to_end_check_names_an_order_changed_behind_its_timeline(
    url: str, storage: SqlStorage
) -> None:
    received, _pending, bare = await _orders(storage)
    await _set_state_behind_the_timeline(storage, received, "cancelled")
    await _set_state_behind_the_timeline(storage, bare, "paid")

    assert sorted(disagreements(url)) == sorted(
        [(received, "cancelled", "received"), (bare, "paid", "received")]
    )
    with pytest.raises(AssertionError, match=f"G7: 2 order.*{received}"):
        with timelines_checked(url):
            pass


async def test_the_demo_audit_breaks_its_invariant_for_the_runs_order(
    url: str, storage: SqlStorage
) -> None:
    received, pending, bare = await _orders(storage)
    await _set_state_behind_the_timeline(storage, pending, "paid")
    await _set_state_behind_the_timeline(storage, bare, "paid")  # not one of the run's orders

    snapshot = await audit.snapshot(storage.db, PREFIX)
    shoppers = ShopperStats(
        checkouts=[
            Checkout(0, "card", f"{PREFIX}1", acknowledged={received}),
            Checkout(1, "card", f"{PREFIX}2", acknowledged={pending}),
        ]
    )
    book = {"charges": [_charge(pending)]}
    broken = audit.check(shoppers, snapshot, book)

    assert snapshot.timeline_disagrees == [pending]
    assert broken["timeline_disagrees_with_state"] == [pending]
    assert audit.build_report(shoppers, snapshot, book, {}, seed=1, database="test").ok is False


def _charge(order_id: str) -> dict[str, object]:
    return {
        "id": "ch_1",
        "status": "succeeded",
        "amount": 2 * 1999 + 850,
        "amount_refunded": 0,
        "currency": "eur",
        "metadata": {"order_id": order_id},
    }
