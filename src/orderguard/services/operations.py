"""What an operator may do to one order: refund it, cancel it (G3, G7).

Used by the CLI (cause ``support``, the operator's name as actor) and the API (cause
``api``, actor ``api``); the actor is on every timeline entry these write. The provider is
called outside any transaction, with an idempotency key derived from the order, so a
repeated request can never refund twice; then the order is reloaded, locked and changed
through the state machine. An order whose payment outcome is not known yet is never
cancelled: only the provider can say whether the shopper was charged.
"""

from __future__ import annotations

from datetime import datetime

from orderguard.domain.errors import (
    CancelNotAllowed,
    OrderNotFound,
    ProviderUnreachable,
    RefundNotAllowed,
)
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund import REFUND_NOT_MADE
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import (
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderRejected,
    RefundResult,
)
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of, record_refund_failure
from orderguard.storage.ports import OrderRepository, UnitOfWorkFactory

#: Orders in these states may be cancelled (``action_required`` after the provider agrees).
CANCELLABLE = frozenset(
    {OrderState.RECEIVED, OrderState.PAYMENT_FAILED, OrderState.ACTION_REQUIRED}
)
#: The decline code recorded on an attempt an operator cancelled.
CANCELLED_BY_OPERATOR = "cancelled_by_operator"
_WHY_NOT_CANCEL = {
    OrderState.PAYMENT_PENDING: "its payment's outcome is not known yet: ask the provider "
    "first (recheck)",
    OrderState.PAYMENT_UNKNOWN: "its payment's outcome is not known yet: ask the provider "
    "first (recheck)",
    OrderState.PAID: "it is paid: refund it instead",
    OrderState.REFUNDED: "it is refunded",
}


class Operations:
    """Refunds and cancellations requested by a person or a merchant's system."""

    def __init__(
        self, storage: UnitOfWorkFactory, payments: Payments, *, clock: Clock = system_clock
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._clock = clock

    async def refund_order(
        self, order_id: str, *, amount: int | None = None, actor: str, cause: Cause
    ) -> Order:
        """Refund a paid order in full (``amount=None``) or in part, at its provider."""
        attempt = _refundable(await self._load(order_id), amount)
        assert attempt.provider_ref is not None  # a succeeded attempt has its reference
        key = f"orderguard-refund-{order_id}-{'full' if amount is None else amount}"
        provider = self._payments.providers.named(attempt.provider).provider
        try:
            result = await provider.refund(attempt.provider_ref, amount=amount, idempotency_key=key)
        except ProviderRejected as exc:
            raise RefundNotAllowed(order_id, f"{attempt.provider} refused: {exc}") from exc
        except ProviderError as exc:
            await self._note_refund_error(order_id, attempt, exc, actor=actor, cause=cause)
            raise ProviderUnreachable(attempt.provider, str(exc)) from exc
        async with self._storage() as uow:
            order = await _locked(uow.orders, order_id)
            _record_refund(order, attempt.id, result, actor=actor, cause=cause, at=self._clock())
            await uow.orders.save(order)
            await uow.commit()
        return order

    async def _note_refund_error(
        self,
        order_id: str,
        attempt: PaymentAttempt,
        exc: ProviderError,
        *,
        actor: str,
        cause: Cause,
    ) -> None:
        """Put a refund call whose outcome is not known on the order's timeline (G7).

        It may have been made; repeating the request (same idempotency key) is safe and
        tells. A refusal (:class:`ProviderRejected`) changed nothing and is only answered.
        """
        async with self._storage() as uow:
            order = await _locked(uow.orders, order_id)
            text = f"refund request at {attempt.provider} got no answer ({exc})"
            order.note(
                f"{text}; the order stays {order.state} until the request is repeated",
                cause=cause,
                at=self._clock(),
                actor=actor,
            )
            await uow.orders.save(order)
            await uow.commit()

    async def cancel_order(self, order_id: str, *, actor: str, cause: Cause) -> Order:
        """Cancel an order that is not paid and has no payment in flight."""
        order = await self._load(order_id)
        if order.state is OrderState.CANCELLED:
            return order  # cancelling twice changes nothing
        _check_cancellable(order)
        if order.state is OrderState.ACTION_REQUIRED:
            await self._cancel_at_provider(order, cause)
        async with self._storage() as uow:
            order = await _locked(uow.orders, order_id)
            if order.state is OrderState.CANCELLED:
                return order
            _check_cancellable(order)
            _cancel(order, actor=actor, cause=cause, at=self._clock())
            await uow.orders.save(order)
            await uow.commit()
        return order

    async def _cancel_at_provider(self, order: Order, cause: Cause) -> None:
        """Cancel the payments awaiting authentication; refuse when one went through."""
        for attempt in order.attempts:
            if attempt.state is not AttemptState.ACTION_REQUIRED or not attempt.provider_ref:
                continue
            provider = self._payments.providers.named(attempt.provider).provider
            try:
                result = await provider.cancel_payment(attempt.provider_ref)
            except ProviderError as exc:
                raise ProviderUnreachable(attempt.provider, str(exc)) from exc
            if result.outcome is not PaymentOutcome.FAILED:
                state = await self._settle(order.id, attempt.id, result, cause)
                raise CancelNotAllowed(
                    order.id,
                    f"{attempt.provider} reports the payment {result.outcome}, "
                    f"so the order is now {state}",
                )

    async def _settle(
        self, order_id: str, attempt_id: str, result: PaymentResult, cause: Cause
    ) -> OrderState:
        async with self._storage() as uow:
            order = await _locked(uow.orders, order_id)
            self._payments.settle(
                order, attempt_id, outcome_of(result), cause=cause, at=self._clock()
            )
            await uow.orders.save(order)
            await uow.commit()
        return order.state

    async def _load(self, order_id: str) -> Order:
        async with self._storage() as uow:
            order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order


async def _locked(orders: OrderRepository, order_id: str) -> Order:
    order = await orders.get(order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    return order


def _refundable(order: Order, amount: int | None) -> PaymentAttempt:
    """The attempt that paid ``order``; raises :class:`RefundNotAllowed`."""
    if order.state is not OrderState.PAID:
        raise RefundNotAllowed(order.id, f"it is {order.state}; only a paid order is refunded")
    attempt = next((a for a in order.attempts if a.state is AttemptState.SUCCEEDED), None)
    if attempt is None or not attempt.provider_ref:
        raise RefundNotAllowed(order.id, "no payment attempt of it succeeded")
    if amount is not None and not 0 < amount <= attempt.amount:
        raise RefundNotAllowed(order.id, f"{amount} is not between 1 and the {attempt.amount} paid")
    return attempt


def _record_refund(
    order: Order, attempt_id: str, result: RefundResult, *, actor: str, cause: Cause, at: datetime
) -> None:
    attempt = next(a for a in order.attempts if a.id == attempt_id)
    if result.status in REFUND_NOT_MADE:
        record_refund_failure(order, attempt, result, cause=cause, at=at)
        return
    what = f"refund {result.refund_ref} of {result.amount} {result.currency} at {attempt.provider}"
    full = result.amount >= attempt.amount
    if full and attempt.state is AttemptState.SUCCEEDED and order.state is OrderState.PAID:
        attempt.move_to(AttemptState.REFUNDED, at=at)
        order.move_to(OrderState.REFUNDED, cause=cause, at=at, note=what, actor=actor)
        return
    status = "partial " if result.amount < attempt.amount else ""
    order.note(f"{status}{what} ({result.status})", cause=cause, at=at, actor=actor)


def _check_cancellable(order: Order) -> None:
    if order.state not in CANCELLABLE:
        raise CancelNotAllowed(order.id, _WHY_NOT_CANCEL.get(order.state, f"it is {order.state}"))


def _cancel(order: Order, *, actor: str, cause: Cause, at: datetime) -> None:
    note = f"cancelled by {actor}"
    for attempt in order.attempts:
        if attempt.state is AttemptState.ACTION_REQUIRED:
            attempt.decline_code = CANCELLED_BY_OPERATOR
            attempt.move_to(AttemptState.FAILED, at=at)
            note += f"; attempt {attempt.seq} was cancelled at {attempt.provider}"
    order.payment_method = None
    order.move_to(OrderState.CANCELLED, cause=cause, at=at, note=note, actor=actor)
