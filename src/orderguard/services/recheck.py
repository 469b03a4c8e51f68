"""Asking the provider what really happened to an order's open attempts (G5).

Used when the shopper returns from authentication, by operators, and by the janitor.
An attempt the provider has no record of, whose order still waits for it, is re-sent
with its original idempotency key: never with a new one, so it can never charge twice.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import PaymentOutcome, PaymentResult, ProviderError
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of
from orderguard.services.providers import ProviderSlot
from orderguard.services.settling import Answered, apply_answers, settle
from orderguard.storage.ports import UnitOfWorkFactory

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
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._clock = clock

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
        slot = self._payments.providers.named(attempt.provider)
        budget = self._payments.settings.time_budget_s
        try:
            result = await asyncio.wait_for(_lookup(slot, order, attempt), timeout=budget)
        except (ProviderError, TimeoutError):
            return None  # the provider cannot tell now; ask again later
        if result is not None:
            return outcome_of(result)
        if (
            attempt.state in {AttemptState.PENDING, AttemptState.UNKNOWN}
            and order.state in _STILL_WANTED
            and self._clock() - attempt.created_at < self._key_retention(attempt)
        ):
            # should the request that created it still be under way, the provider answers
            # 409 (ProviderBusy): retried until that one is done, else unknown, never failed
            return await self._payments.send(order, attempt)
        return None

    def _key_retention(self, attempt: PaymentAttempt) -> timedelta:
        """How long after an attempt a re-send with its key is still safe: as long as its
        provider remembers the key (its profile says); after that a re-send could charge
        again if the search missed the first charge, so older attempts are left to the
        janitor's escalation."""
        return self._payments.providers.named(attempt.provider).capabilities.key_retention


async def _lookup(
    slot: ProviderSlot, order: Order, attempt: PaymentAttempt
) -> PaymentResult | None:
    """The provider's view of the attempt: by its reference, else by order id, as far as
    the provider can be asked (its capabilities); ``None`` when it has no record.

    A provider that can be asked neither way cannot tell (:class:`ProviderError`): the
    attempt is asked about again later, never taken as unknown to the provider.
    """
    provider, can = slot.provider, slot.capabilities
    if attempt.provider_ref and can.retrieve_by_reference:
        return await provider.retrieve_payment(attempt.provider_ref)
    known = slot.profile.known_reference(attempt.id, attempt.idempotency_key)
    if known and can.retrieve_by_reference:
        # the first answer was lost, but the shop chose the reference: ask by it
        result = await provider.retrieve_payment(known)
        if result.outcome is PaymentOutcome.ACTION_REQUIRED and not result.redirect_url:
            # the shopper has nothing to act on yet (no cashier page, no code): the same
            # request again, under the same reference, gives it (no record to settle)
            return None
        return result
    if not can.find_by_order_id:
        raise ProviderError(f"{slot.name} cannot be asked about an attempt by order id")
    matches = [r for r in await provider.find_payments(order.id) if r.attempt_id == attempt.id]
    return matches[0] if matches else None
