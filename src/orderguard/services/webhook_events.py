"""Applying one verified webhook to the order it is about (G6, G7).

A payment event moves the attempt it names through the state machine (a late failure
after ``paid`` is only a timeline note). An event naming a payment we do not know is not
trusted: the provider is asked about the order instead. An event for an order we do not
have is left to the orphan sweep. A refund event (``refund.created``, ``refund.updated``,
``refund.failed``, ``charge.refund.updated``: a Refund object) updates the refund's record,
found by the provider's refund id or the ``refund_id`` in its metadata, or records a refund
made at the provider; a failed one, even after the order is ``refunded``, flags the order
for review: it is never dropped. ``charge.refunded`` (a cumulative ``amount_refunded``, no
refund list) is only compared with the records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import apply_provider_refund, refunded_on
from orderguard.domain.refund_record import RefundState, refund_state_of
from orderguard.domain.settle import changes_nothing
from orderguard.providers.base import (
    Charge,
    PaymentResult,
    ProviderRejected,
    RefundResult,
    WebhookEvent,
)
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of, record_refund_failure
from orderguard.services.settling import Answered, Then, mutate, settle
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("orderguard.inbound_webhooks")
_CAUSE = Cause.WEBHOOK


@dataclass(frozen=True, slots=True)
class Applied:
    """An event found to change nothing: as applied already, about ``order_id``."""

    order_id: str | None


class AsksAboutOrder(Protocol):
    """Asks the provider about an order and applies its answer (``services.recheck``'s
    ``Recheck``, given by the composition root: the events need no more of it)."""

    async def order(self, order_id: str, *, cause: Cause) -> object:
        """Recheck ``order_id`` now."""
        ...


class WebhookEvents:
    """Applies parsed webhook events to orders; returns the id of the order concerned."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        payments: Payments,
        recheck: AsksAboutOrder,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._recheck = recheck
        self._clock = clock

    async def apply(
        self, provider: str, event: WebhookEvent, *, then: Then | None = None
    ) -> str | None:
        """Apply ``event`` from ``provider``; ``None`` when it concerns no order of ours.

        ``then`` runs inside the transaction that settles a payment event's answer on its
        order (e.g. the inbox recording the event processed, in the same commit); it is not
        run otherwise (nor when the event names a payment we do not know: the provider is
        asked after that transaction, and a failure there must leave the event to retry).
        """
        if event.refund is not None:
            return await self._refund(provider, event.event_id, event.refund)
        if event.charge is not None:
            return await self._charge(provider, event.event_id, event.charge)
        if event.payment is not None:
            return await self._payment(provider, event.event_id, event.payment, then)
        return None  # an event type the inbox does not act on

    async def applied_already(
        self, uow: UnitOfWork, provider: str, event: WebhookEvent
    ) -> Applied | None:
        """What :meth:`apply` would do with ``event`` if it is known to change nothing, read
        in ``uow`` (one statement at most), else ``None`` (it must be applied).

        Nothing to do: an event type that is not acted on (no payment, refund or charge:
        e.g. ``charge.succeeded``), and a payment event whose attempt, as stored now, is
        already in the event's state with everything the event says
        (:func:`~orderguard.domain.settle.changes_nothing`; e.g. ``payment_intent.succeeded``
        for an order the charge's own answer paid). Applying such an event locks the order,
        finds nothing to change and saves it as it was; the state only moves forward, so
        reading the attempt without the lock decides it as well: the event is applied, as
        a no-op, at the moment of the read.
        """
        if event.refund is None and event.charge is None and event.payment is None:
            return Applied(order_id=None)
        if event.refund is not None or event.charge is not None or event.payment is None:
            return None
        payment = event.payment
        order_id = payment.order_id or payment.metadata.get("order_id")
        if not order_id:
            return None
        attempts = await uow.orders.attempts(order_id)
        attempt = known_among(attempts, provider, payment.attempt_id, payment.provider_ref)
        if attempt is None or not changes_nothing(attempt, outcome_of(payment)):
            return None
        return Applied(order_id=order_id)

    async def _payment(
        self, provider: str, event_id: str, payment: PaymentResult, then: Then | None = None
    ) -> str | None:
        order_id = payment.order_id or payment.metadata.get("order_id")
        if not order_id:
            log.info("webhook %s names no order; left to the orphan sweep", event_id)
            return None

        answered: list[Answered] = []

        def answers(order: Order) -> list[Answered]:
            attempt = known_attempt(order, provider, payment.attempt_id, payment.provider_ref)
            if attempt is None:
                order.note(_untrusted(event_id, payment, provider), cause=_CAUSE, at=self._clock())
                return []
            answered.append(Answered(attempt.id, outcome_of(payment)))
            return answered

        async def then_if_answered(uow: UnitOfWork, order: Order) -> None:
            if then is not None and answered:  # else the provider is asked, after this
                await then(uow, order)

        try:
            settled = await settle(
                self._storage,
                order_id,
                answers,
                cause=_CAUSE,
                clock=self._clock,
                then=then_if_answered,
            )
        except OrderNotFound:
            log.info("webhook %s names unknown order %s; left to the sweep", event_id, order_id)
            return None
        if not settled.answered:
            await self._recheck.order(order_id, cause=_CAUSE)
        return order_id

    async def _refund(self, provider: str, event_id: str, refund: RefundResult) -> str | None:
        """Match the refund to its record (or record it) and apply its status."""
        order_id = await self._order_of(provider, refund.provider_ref, refund.metadata)
        if order_id is None:
            log.info("refund webhook %s names no order of ours", event_id)
            return None

        def record(order: Order) -> None:
            attempt = known_attempt(order, provider, None, refund.provider_ref)
            at = self._clock()
            if attempt is None:
                if refund_state_of(refund.status) is RefundState.FAILED:
                    record_refund_failure(order, None, refund, cause=_CAUSE, at=at)
                else:
                    note = f"refund webhook {event_id} for an unknown payment"
                    order.note(note, cause=_CAUSE, at=at)
            else:
                apply_provider_refund(
                    order,
                    attempt,
                    refund_ref=refund.refund_ref,
                    amount=refund.amount,
                    currency=refund.currency,
                    status=refund_state_of(refund.status),
                    failure_reason=refund.failure_reason,
                    refund_id=refund.metadata.get("refund_id"),
                    cause=_CAUSE,
                    at=at,
                )

        try:
            return (await mutate(self._storage, order_id, record)).order.id
        except OrderNotFound:
            return None

    async def _charge(self, provider: str, event_id: str, charge: Charge) -> str | None:
        """``charge.refunded``: compare its cumulative ``amount_refunded`` with our records.

        It names no refund, so it changes nothing by itself (each refund comes in its own
        ``refund.*`` event); a difference is put on the timeline so a person can see it.
        """
        order_id = await self._order_of(provider, charge.provider_ref, charge.metadata)
        if order_id is None:
            return None

        def compare(order: Order) -> bool:
            attempt = known_attempt(order, provider, None, charge.provider_ref)
            known = None if attempt is None else refunded_on(order, attempt)
            if known is None or known == charge.amount_refunded:
                return False
            order.note(
                f"{provider} reports {charge.amount_refunded} {charge.currency} refunded on "
                f"attempt {attempt.seq if attempt else '?'} ({event_id}); orderguard knows "
                f"{known}: waiting for the refund events that explain it",
                cause=_CAUSE,
                at=self._clock(),
            )
            return True

        try:
            await mutate(self._storage, order_id, compare)
        except OrderNotFound:
            return None
        return order_id

    async def _order_of(
        self, provider: str, provider_ref: str, metadata: Mapping[str, str]
    ) -> str | None:
        """The order a refund or charge is about: its metadata, else the payment's."""
        if metadata.get("order_id"):
            return metadata["order_id"]
        slot = self._payments.providers.named(provider)
        try:
            payment = await slot.provider.retrieve_payment(provider_ref)
        except ProviderRejected:
            return None  # the provider does not know it either: nothing to apply
        return payment.order_id or None


def known_attempt(
    order: Order, provider: str, attempt_id: str | None, provider_ref: str | None
) -> PaymentAttempt | None:
    """The order's attempt the event names, if the event and our records agree on it."""
    return known_among(order.attempts, provider, attempt_id, provider_ref)


def known_among(
    attempts: Sequence[PaymentAttempt],
    provider: str,
    attempt_id: str | None,
    provider_ref: str | None,
) -> PaymentAttempt | None:
    """:func:`known_attempt` among an order's ``attempts`` (in order)."""
    for attempt in attempts:
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
