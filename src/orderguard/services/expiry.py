"""Orders the shopper walked away from: an authentication (3-D Secure) never finished.

The provider is asked first — the shopper may have finished after all — then the waiting
payment is cancelled *at the provider*, and only when the provider confirms it is the
order cancelled. So a shopper who approves later cannot be charged for a cancelled order;
should a charge arrive anyway, ``domain.settle`` flags it for the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import PaymentOutcome, ProviderError
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of
from orderguard.services.recheck import Recheck
from orderguard.services.settling import Answered, mutate, settle
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.expiry")
#: The decline code recorded on an attempt whose authentication was abandoned.
ABANDONED = "authentication_abandoned"


async def expire_abandoned(
    storage: UnitOfWorkFactory,
    payments: Payments,
    recheck: Recheck,
    *,
    after: timedelta,
    clock: Clock = system_clock,
    limit: int = 100,
    concurrency: int = 8,
) -> int:
    """Cancel orders left in ``action_required`` longer than ``after``; return how many.

    Up to ``concurrency`` orders at once: each costs up to two provider calls, and one slow
    answer must not hold back the others' expiry.
    """
    async with storage() as uow:
        stale = await uow.orders.in_state(
            OrderState.ACTION_REQUIRED, updated_before=clock() - after, limit=limit
        )
    slots = asyncio.Semaphore(concurrency)

    async def one(order_id: str) -> int:
        async with slots:
            latest = await recheck.order(order_id, cause=Cause.JANITOR)
            if latest.state is OrderState.ACTION_REQUIRED and await _cancel_at_provider(
                storage, payments, latest, clock
            ):
                return await _cancel_order(storage, order_id, after, clock)
            return 0

    return sum(await asyncio.gather(*(one(order_id) for order_id in stale)))


async def _cancel_at_provider(
    storage: UnitOfWorkFactory, payments: Payments, order: Order, clock: Clock
) -> bool:
    """Whether every waiting payment of the order is now cancelled at its provider."""
    for attempt in order.attempts:
        if attempt.state is not AttemptState.ACTION_REQUIRED or not attempt.provider_ref:
            continue
        provider = payments.providers.named(attempt.provider).provider
        try:
            result = await provider.cancel_payment(attempt.provider_ref)
        except ProviderError as exc:
            log.warning(
                "could not cancel %s at %s, will retry: %s", attempt.id, attempt.provider, exc
            )
            return False
        if result.outcome is not PaymentOutcome.FAILED:  # it went through after all
            answer = Answered(attempt.id, outcome_of(result))
            await settle(storage, order.id, [answer], cause=Cause.JANITOR, clock=clock)
            return False
    return True


async def _cancel_order(
    storage: UnitOfWorkFactory, order_id: str, after: timedelta, clock: Clock
) -> int:
    def cancel(order: Order) -> bool:
        if order.state is not OrderState.ACTION_REQUIRED:
            return False
        order.cancel(
            decline_code=ABANDONED,
            cause=Cause.JANITOR,
            at=clock(),
            note=f"authentication not finished within {_duration(after)}; "
            "the payment was cancelled at the provider",
        )
        return True

    return int((await mutate(storage, order_id, cancel)).saved)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
