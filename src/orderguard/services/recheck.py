"""Asking the provider what really happened to an order's open attempts (G5).

Used when the shopper returns from authentication, by operators, and by the janitor.
An attempt the provider has no record of, whose order still waits for it, is re-sent
with its original idempotency key: never with a new one, so it can never charge twice.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from dataclasses import replace
from datetime import timedelta

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import PaymentProvider, PaymentResult, ProviderError
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of
from orderguard.services.settling import Answered, apply_answers, settle
from orderguard.storage.ports import UnitOfWorkFactory

#: How long after an attempt a re-send with its key is still safe: providers keep
#: idempotency keys for 24 hours (Stripe), after which a re-send could charge again if the
#: search missed the first charge. Older attempts are left to the janitor's escalation.
KEY_RETENTION = timedelta(hours=23)
#: Orders in these states still want their open attempt to go through.
_STILL_WANTED = {OrderState.PAYMENT_PENDING, OrderState.PAYMENT_UNKNOWN}


class Recheck:
    """Brings an order's open attempts up to date with the provider."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        payments: Payments,
        *,
        clock: Clock = system_clock,
        planted_defect: str | None = None,
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._clock = clock
        self._defect = planted_defect

    async def order(self, order_id: str, *, cause: Cause, actor: str | None = None) -> Order:
        """Ask about every open attempt of the order and apply the answers (one transaction
        to read, the provider calls outside any, one to settle what they said)."""
        async with self._storage() as uow:
            order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        answers = await self.ask(order, cause=cause)
        if not answers:
            return order
        settled = await settle(
            self._storage, order_id, answers, cause=cause, clock=self._clock, actor=actor
        )
        return settled.order

    async def ask(self, order: Order, *, cause: Cause) -> list[Answered]:
        """What the providers say about the order's open attempts: provider calls only (no
        transaction), ``order`` unchanged. Each attempt after the first is asked about as the
        answers before it leave the order (re-sent only while the order still wants it)."""
        answers: list[Answered] = []
        seen = order
        for attempt_id in [a.id for a in order.attempts if not a.state.is_terminal]:
            if answers:
                seen = copy.deepcopy(order)
                apply_answers(seen, answers, cause=cause, at=self._clock())
            attempt = next(a for a in seen.attempts if a.id == attempt_id)
            outcome = await self._ask(seen, attempt)
            if outcome is not None:
                answers.append(Answered(attempt_id, outcome))
        return answers

    async def _ask(self, order: Order, attempt: PaymentAttempt) -> Outcome | None:
        if self._defect == "recharge_unknown" and order.state is OrderState.PAYMENT_UNKNOWN:
            # DELIBERATELY WRONG (Settings.planted_defect, for proving the demo's checker):
            # guess instead of asking, and charge again under a key the provider never saw.
            fresh = replace(attempt, idempotency_key=f"defect-{uuid.uuid4()}")
            return await self._payments.send(order, fresh)
        provider = self._payments.providers.named(attempt.provider).provider
        budget = self._payments.settings.time_budget_s
        try:
            result = await asyncio.wait_for(_lookup(provider, order, attempt), timeout=budget)
        except (ProviderError, TimeoutError):
            return None  # the provider cannot tell now; ask again later
        if result is not None:
            return outcome_of(result)
        if (
            attempt.state in {AttemptState.PENDING, AttemptState.UNKNOWN}
            and order.state in _STILL_WANTED
            and self._clock() - attempt.created_at < KEY_RETENTION
        ):
            # should the request that created it still be under way, the provider answers
            # 409 (ProviderBusy): retried until that one is done, else unknown, never failed
            return await self._payments.send(order, attempt)
        return None


async def _lookup(
    provider: PaymentProvider, order: Order, attempt: PaymentAttempt
) -> PaymentResult | None:
    """The provider's view of the attempt: by its reference, else by order id."""
    if attempt.provider_ref:
        return await provider.retrieve_payment(attempt.provider_ref)
    matches = [r for r in await provider.find_payments(order.id) if r.attempt_id == attempt.id]
    return matches[0] if matches else None
