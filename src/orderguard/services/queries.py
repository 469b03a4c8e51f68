"""Reading orders: one order with its history, and pages of orders."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import TimelineEntry
from orderguard.domain.order import Order
from orderguard.storage.ports import OrderQuery, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class OrderDetail:
    """An order with its payment attempts and its timeline."""

    order: Order
    timeline: list[TimelineEntry]


async def order_detail(storage: UnitOfWorkFactory, order_id: str) -> OrderDetail:
    """The order and its timeline; raises :class:`OrderNotFound`."""
    async with storage() as uow:
        order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return OrderDetail(order, await uow.orders.timeline(order_id))


async def list_orders(storage: UnitOfWorkFactory, query: OrderQuery) -> list[Order]:
    """A page of orders, newest first."""
    async with storage() as uow:
        return await uow.orders.search(query)


async def shopper_order(storage: UnitOfWorkFactory, order_id: str, token: str) -> Order | None:
    """The order when ``token`` is its status token (compared in constant time), else
    ``None``: a wrong token and an unknown order look the same."""
    async with storage() as uow:
        order = await uow.orders.get(order_id)
    if order is None or not hmac.compare_digest(order.status_token.encode(), token.encode()):
        return None
    return order
