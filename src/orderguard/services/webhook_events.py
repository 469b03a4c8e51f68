"""Applying one verified webhook to the order it is about (G6, G7).

A payment event moves the attempt it names through the state machine (a late failure
after ``paid`` is only a timeline note). An event naming a payment we do not know is not
trusted: the provider is asked about the order instead. An event for an order we do not
have is left to the orphan sweep. A succeeded refund is applied to the refunded attempt; a
failed one (``refund.updated``, ``charge.refund.updated`` with status ``failed``), even after
the order is ``refunded``, flags the order for review: it is never dropped.
"""

from __future__ import annotations

import logging

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import REFUND_NOT_MADE, apply_refund
from orderguard.providers.base import (
    PaymentResult,
    ProviderRejected,
    RefundResult,
    WebhookEvent,
)
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of, record_refund_failure
from orderguard.services.recheck import Recheck
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.webhooks")
_CAUSE = Cause.WEBHOOK


class WebhookEvents:
    """Applies parsed webhook events to orders; returns the id of the order concerned."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        payments: Payments,
        recheck: Recheck,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._recheck = recheck
        self._clock = clock

    async def apply(self, provider: str, event: WebhookEvent) -> str | None:
        """Apply ``event`` from ``provider``; ``None`` when it concerns no order of ours."""
        if event.refund is not None:
            return await self._refund(provider, event.event_id, event.refund)
        if event.payment is not None:
            return await self._payment(provider, event.event_id, event.payment)
        return None  # an event type the inbox does not act on

    async def _payment(self, provider: str, event_id: str, payment: PaymentResult) -> str | None:
        order_id = payment.order_id or payment.metadata.get("order_id")
        if not order_id:
            log.info("webhook %s names no order; left to the orphan sweep", event_id)
            return None
        async with self._storage() as uow:
            order = await uow.orders.get(order_id, for_update=True)
            if order is None:
                log.info("webhook %s names unknown order %s; left to the sweep", event_id, order_id)
                return None
            attempt = known_attempt(order, provider, payment.attempt_id, payment.provider_ref)
            if attempt is None:
                order.note(_untrusted(event_id, payment, provider), cause=_CAUSE, at=self._clock())
            else:
                self._payments.settle(
                    order, attempt.id, outcome_of(payment), cause=_CAUSE, at=self._clock()
                )
            await uow.orders.save(order)
            await uow.commit()
        if attempt is None:
            await self._recheck.order(order_id, cause=_CAUSE)
        return order_id

    async def _refund(self, provider: str, event_id: str, refund: RefundResult) -> str | None:
        if refund.status != "succeeded" and refund.status not in REFUND_NOT_MADE:
            return None  # pending: nothing was given back yet, nor refused
        slot = self._payments.providers.named(provider)
        try:
            payment = await slot.provider.retrieve_payment(refund.provider_ref)
        except ProviderRejected:
            payment = None  # the provider does not know it either: nothing to apply
        if payment is None or not payment.order_id:
            log.info("refund webhook %s names no order of ours", event_id)
            return None
        async with self._storage() as uow:
            order = await uow.orders.get(payment.order_id, for_update=True)
            if order is None:
                return None
            attempt = known_attempt(order, provider, None, refund.provider_ref)
            at = self._clock()
            if refund.status in REFUND_NOT_MADE:
                log.warning("refund %s of order %s: %s", refund.refund_ref, order.id, refund.status)
                record_refund_failure(order, attempt, refund, cause=_CAUSE, at=at)
            elif attempt is None:
                order.note(f"refund webhook {event_id} for an unknown payment", cause=_CAUSE, at=at)
            else:
                apply_refund(order, attempt, amount=refund.amount, cause=_CAUSE, at=at)
            await uow.orders.save(order)
            await uow.commit()
        return order.id


def known_attempt(
    order: Order, provider: str, attempt_id: str | None, provider_ref: str | None
) -> PaymentAttempt | None:
    """The order's attempt the event names, if the event and our records agree on it."""
    for attempt in order.attempts:
        same_id = attempt_id is not None and attempt.id == attempt_id
        same_ref = provider_ref is not None and attempt.provider_ref == provider_ref
        if not (same_id or same_ref) or attempt.provider != provider:
            continue
        id_conflict = attempt_id is not None and not same_id
        ref_conflict = None not in (provider_ref, attempt.provider_ref) and not same_ref
        return None if id_conflict or ref_conflict else attempt
    return None


def _untrusted(event_id: str, payment: PaymentResult, provider: str) -> str:
    return (
        f"webhook {event_id} reports {payment.outcome} for a payment we do not know "
        f"({payment.provider_ref}); asking {provider} instead of trusting it"
    )
