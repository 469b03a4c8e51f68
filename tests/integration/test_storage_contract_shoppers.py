"""The stored shopper data port (``storage.shopper_rows``: what the shopper-data audit
reads), one contract run unchanged on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.customer import Address, Customer
from orderguard.domain.order import Order, OrderLine
from orderguard.storage.ports import ShopperRow, UnitOfWorkFactory

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _order(at: datetime, *, order_id: str, customer: Customer | None = None) -> Order:
    return Order.place(
        currency="EUR",
        lines=[OrderLine("MUG", "Mug", 1, 850)],
        customer=customer
        or Customer("ana@example.com", "Ana", Address("R 1", "Porto", "4000", "PT")),
        at=at,
        order_id=order_id,
    )


async def _add(storage: UnitOfWorkFactory, *orders: Order) -> None:
    async with storage() as uow:
        for order in orders:
            await uow.orders.add(order)
        await uow.commit()


async def _scan(
    storage: UnitOfWorkFactory, *, since: datetime | None = None, page: int = 500
) -> list[ShopperRow]:
    return [row async for row in storage.shopper_rows.scan(since=since, page=page)]


async def test_each_row_is_the_shopper_data_as_stored(storage: UnitOfWorkFactory) -> None:
    with_all = Customer(
        "bea@example.com",
        "Bea Costa",
        Address("Rua Nova 2", "Braga", "4700-001", "PT", line2="3º Esq"),
        "+351912345678",
    )
    await _add(
        storage,
        _order(T0, order_id="ord_A", customer=with_all),
        _order(T0 + MIN, order_id="ord_B"),
    )

    assert await _scan(storage) == [
        ShopperRow(
            order_id="ord_A",
            created_at=T0,
            email="bea@example.com",
            name="Bea Costa",
            phone="+351912345678",
            line1="Rua Nova 2",
            line2="3º Esq",
            city="Braga",
            postal_code="4700-001",
            country="PT",
        ),
        ShopperRow(
            order_id="ord_B",
            created_at=T0 + MIN,
            email="ana@example.com",
            name="Ana",
            phone=None,
            line1="R 1",
            line2=None,
            city="Porto",
            postal_code="4000",
            country="PT",
        ),
    ]


async def test_every_order_comes_once_oldest_first_across_pages(
    storage: UnitOfWorkFactory,
) -> None:
    # placed out of order; three at the same moment, so a page boundary falls between
    # orders with one creation time and the id decides
    await _add(
        storage,
        _order(T0 + 2 * MIN, order_id="ord_E"),
        _order(T0 + MIN, order_id="ord_D"),
        _order(T0 + MIN, order_id="ord_B"),
        _order(T0 + MIN, order_id="ord_C"),
        _order(T0, order_id="ord_A"),
    )
    expected = ["ord_A", "ord_B", "ord_C", "ord_D", "ord_E"]

    for page in (1, 2, 3, 5, 500):
        assert [r.order_id for r in await _scan(storage, page=page)] == expected, page


async def test_since_keeps_the_orders_placed_at_or_after_it(storage: UnitOfWorkFactory) -> None:
    await _add(
        storage,
        _order(T0 - MIN, order_id="ord_A"),
        _order(T0, order_id="ord_B"),
        _order(T0 + MIN, order_id="ord_C"),
    )

    assert [r.order_id for r in await _scan(storage, since=T0)] == ["ord_B", "ord_C"]
    assert [r.order_id for r in await _scan(storage, since=T0, page=1)] == ["ord_B", "ord_C"]
    assert await _scan(storage, since=T0 + 2 * MIN) == []


async def test_nothing_stored_scans_nothing(storage: UnitOfWorkFactory) -> None:
    assert await _scan(storage) == []
