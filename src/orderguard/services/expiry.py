"""Orders the shopper walked away from: an authentication (3-D Secure) never finished.

The provider is asked first — the shopper may have finished after all — and only an order
still waiting for them is cancelled, its attempt marked failed. Nothing is charged later:
a charge that still arrives for a cancelled order is flagged (``domain.settle``).
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.domain.events import Cause
from orderguard.domain.states import AttemptState, OrderState
from orderguard.services.clock import Clock, system_clock
from orderguard.services.recheck import Recheck
from orderguard.storage.ports import UnitOfWorkFactory

#: The decline code recorded on an attempt whose authentication was abandoned.
ABANDONED = "authentication_abandoned"


async def expire_abandoned(
    storage: UnitOfWorkFactory,
    recheck: Recheck,
    *,
    after: timedelta,
    clock: Clock = system_clock,
    limit: int = 100,
) -> int:
    """Cancel orders left in ``action_required`` longer than ``after``; return how many."""
    async with storage() as uow:
        stale = await uow.orders.in_state(
            OrderState.ACTION_REQUIRED, updated_before=clock() - after, limit=limit
        )
    cancelled = 0
    for order_id in stale:
        latest = await recheck.order(order_id, cause=Cause.JANITOR)
        if latest.state is not OrderState.ACTION_REQUIRED:
            continue
        async with storage() as uow:
            order = await uow.orders.get(order_id, for_update=True)
            if order is None or order.state is not OrderState.ACTION_REQUIRED:
                continue
            now = clock()
            for attempt in order.attempts:
                if attempt.state is AttemptState.ACTION_REQUIRED:
                    attempt.decline_code = ABANDONED
                    attempt.move_to(AttemptState.FAILED, at=now)
            minutes = int(after.total_seconds() // 60)
            order.move_to(
                OrderState.CANCELLED,
                cause=Cause.JANITOR,
                at=now,
                note=f"authentication not finished within {minutes} min",
            )
            await uow.orders.save(order)
            await uow.commit()
        cancelled += 1
    return cancelled
