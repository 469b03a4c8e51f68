"""Orders nobody is going to pay: never paid after intake, or not paid again after a decline.

Cancelled after a configurable time, with the reason on the timeline. Orders waiting for
a provider to recover (they hold a payment method) are not abandoned: they are charged;
flagged orders (a charge may have arrived after all) are left to support.
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.services.clock import Clock, system_clock
from orderguard.services.settling import mutate
from orderguard.storage.ports import UnitOfWorkFactory

#: Why an order in each state counts as abandoned.
REASONS = {
    OrderState.RECEIVED: "no payment was started",
    OrderState.PAYMENT_FAILED: "the shopper did not pay again after the decline",
}


async def cancel_abandoned(
    storage: UnitOfWorkFactory,
    *,
    state: OrderState,
    after: timedelta,
    clock: Clock = system_clock,
    limit: int = 100,
) -> int:
    """Cancel orders left in ``state`` longer than ``after``; return how many."""
    async with storage() as uow:
        stale = await uow.orders.in_state(state, updated_before=clock() - after, limit=limit)
    hours = after.total_seconds() / 3600

    def cancel(order: Order) -> bool:
        if order.state is not state or order.payment_method:
            return False
        if order.open_flags:  # e.g. a charge arrived after all: support decides
            return False
        note = f"abandoned: {REASONS[state]} within {hours:g} h"
        order.move_to(OrderState.CANCELLED, cause=Cause.JANITOR, at=clock(), note=note)
        return True

    cancelled = 0
    for order_id in stale:
        cancelled += (await mutate(storage, order_id, cancel)).saved
    return cancelled
