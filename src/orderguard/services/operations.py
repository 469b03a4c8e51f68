"""What an operator may do to one order: refund it, cancel it (G3, G7).

Used by the CLI and console (cause ``support``, the person's name as actor) and the API
(cause ``api``, the key's id as actor); the actor is on every timeline entry these write.
A refund is a record (:mod:`orderguard.domain.refund`): checked against what is left to
refund and stored ``pending`` inside the locked unit of work, then sent to the provider
outside any transaction with the refund's own idempotency key, then settled from the
answer. One client request key is one refund, so a repeated request never refunds twice
and two requests are two refunds. An order whose payment outcome is not known yet is never
cancelled: only the provider can say whether the shopper was charged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain.errors import (
    CancelNotAllowed,
    OrderNotFound,
    ProviderUnreachable,
    RefundNotAllowed,
    RefundUnanswered,
)
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.refund import request_refund, settle_refund
from orderguard.domain.refund_record import Refund, RefundState, refund_state_of
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import (
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderRejected,
    RefundResult,
)
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments, outcome_of
from orderguard.services.settling import Answered, locked, mutate, settle
from orderguard.storage.ports import UnitOfWorkFactory

#: Orders in these states may be cancelled (``action_required`` after the provider agrees).
CANCELLABLE = frozenset(
    {OrderState.RECEIVED, OrderState.PAYMENT_FAILED, OrderState.ACTION_REQUIRED}
)
#: How long a refund the provider did not answer waits before it is sent again.
REFUND_RETRY_AFTER = timedelta(minutes=5)
#: How long a refund the provider accepted may stay pending there (some payment methods
#: take days) before the order is flagged for a person to look.
REFUND_PENDING_LIMIT = timedelta(days=10)
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


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    """A refund request's outcome: the order as it now stands and the request's refund."""

    order: Order
    refund: Refund
    #: Whether the request key had made this refund before (a repeated request).
    replayed: bool


class Operations:
    """Refunds and cancellations requested by a person or a merchant's system."""

    def __init__(
        self, storage: UnitOfWorkFactory, payments: Payments, *, clock: Clock = system_clock
    ) -> None:
        self._storage = storage
        self._payments = payments
        self._clock = clock

    async def refund_order(
        self,
        order_id: str,
        *,
        amount: int | None = None,
        actor: str,
        cause: Cause,
        reason: str = "",
        request_key: str | None = None,
    ) -> Order:
        """Refund a paid order in full (``amount=None``: all that is left) or in part."""
        answer = await self.request_refund(
            order_id,
            amount=amount,
            actor=actor,
            cause=cause,
            reason=reason,
            request_key=request_key,
        )
        return answer.order

    async def request_refund(
        self,
        order_id: str,
        *,
        amount: int | None,
        actor: str,
        cause: Cause,
        reason: str = "",
        request_key: str | None = None,
    ) -> RefundAnswer:
        """The refund for ``request_key``, made at the provider (without a key: a new one,
        unless ``actor`` has one for this amount the provider never answered).

        The refund is stored ``pending`` before the provider is called, so nothing is lost
        if this process dies; a repeated request with the same key is the same refund (its
        provider call is repeated, with the same key, while it is still pending). Raises
        :class:`RefundNotAllowed` (or its :class:`RefundExceedsRefundable`) when refused,
        :class:`ProviderUnreachable` when the provider did not answer: the refund then
        stays pending and is sent again later (:meth:`retry_refunds`).
        """
        async with self._storage() as uow:
            order = await locked(uow, order_id)
            known = {r.id for r in order.refunds}
            refund = request_refund(
                order,
                amount=amount,
                reason=reason,
                requester=actor,
                request_key=request_key,
                cause=cause,
                at=self._clock(),
            )
            if refund.id not in known:
                self._writable(order, refund)
            await uow.orders.save(order)
            await uow.commit()
        if refund.state is RefundState.PENDING and refund.provider_ref is None:
            await self._send(order_id, refund, actor=actor, cause=cause)
        order = await self._load(order_id)
        stored = order.refund(refund.id)
        assert stored is not None  # refunds are never deleted
        return RefundAnswer(order, stored, replayed=refund.id in known)

    def _writable(self, order: Order, refund: Refund) -> None:
        """Refuse, before anything is stored, a refund amount the charge's provider cannot
        write in its units (e.g. a KWD amount not ending in 0): it would only fail
        there. Raises :class:`RefundNotAllowed` naming the nearest amounts it can take."""
        attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
        rule = self._payments.providers.named(attempt.provider).provider.amount_rules(
            refund.currency
        )
        if refund.amount % rule.step == 0:
            return
        lower = refund.amount // rule.step * rule.step
        nearest = [n for n in (lower, lower + rule.step) if n > 0]
        raise RefundNotAllowed(
            order.id,
            f"{attempt.provider} takes {refund.currency} refunds only in multiples of "
            f"{rule.step} minor units, not {refund.amount}; the nearest are "
            + " or ".join(str(n) for n in nearest),
        )

    def _key_lifetime(self, order: Order, refund: Refund) -> timedelta:
        """How long a resend of ``refund`` is safe: as long as the charge's provider
        remembers an idempotency key (its profile says); after that a resend could refund
        twice, so older unanswered refunds are flagged instead."""
        attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
        return self._payments.providers.named(attempt.provider).capabilities.key_retention

    async def _send(self, order_id: str, refund: Refund, *, actor: str, cause: Cause) -> None:
        """Call the provider for ``refund`` with its own key and record what it said.

        Never once the provider may have forgotten the key (:meth:`_key_lifetime`): a
        resend then could refund twice, so the order is flagged for a person instead."""
        order = await self._load(order_id)
        if self._clock() - refund.created_at >= self._key_lifetime(order, refund):
            await self._overdue(order_id, refund.id, flag=True)
            return
        attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
        assert attempt.provider_ref is not None  # a charged attempt has its reference
        provider = self._payments.providers.named(attempt.provider).provider
        try:
            result = await provider.refund(
                attempt.provider_ref,
                amount=refund.amount,
                idempotency_key=refund.provider_key,
                metadata={"refund_id": refund.id, "order_id": order_id},
                currency=refund.currency,
            )
        except ProviderRejected as exc:
            if exc.safe_to_retry:
                await self._note_refund_error(order_id, refund, exc, actor=actor, cause=cause)
                raise _unanswered(attempt.provider, exc, refund) from exc
            await self._settle_refund(order_id, refund.id, actor, cause, failed=str(exc))
            raise RefundNotAllowed(order_id, f"{attempt.provider} refused: {exc}") from exc
        except ProviderError as exc:
            await self._note_refund_error(order_id, refund, exc, actor=actor, cause=cause)
            raise _unanswered(attempt.provider, exc, refund) from exc
        await self._settle_refund(order_id, refund.id, actor, cause, result=result)

    async def _settle_refund(
        self,
        order_id: str,
        refund_id: str,
        actor: str,
        cause: Cause,
        *,
        result: RefundResult | None = None,
        failed: str | None = None,
    ) -> None:
        """Record the provider's answer (``result``) or its refusal (``failed``)."""

        def record(order: Order) -> None:
            refund = order.refund(refund_id)
            assert refund is not None  # refunds are never deleted
            if result is None:
                state, ref, why, accepted = RefundState.FAILED, None, failed, False
            else:
                state, ref = refund_state_of(result.status), result.refund_ref
                why, accepted = result.failure_reason, True
            settle_refund(
                order,
                refund,
                state,
                provider_ref=ref,
                failure_reason=why,
                cause=cause,
                at=self._clock(),
                actor=actor,
                accepted=accepted,
            )

        await mutate(self._storage, order_id, record)

    async def _note_refund_error(
        self, order_id: str, refund: Refund, exc: ProviderError, *, actor: str, cause: Cause
    ) -> None:
        """Put a refund call whose outcome is not known on the order's timeline (G7).

        It may have been made; the refund stays ``pending`` and is sent again with the same
        key (by a repeated request or :meth:`retry_refunds`), which is safe and tells.
        """

        def note(order: Order) -> None:
            order.refund_tried(refund.id, at=self._clock())
            provider = next(a.provider for a in order.attempts if a.id == refund.attempt_id)
            order.note(
                f"refund request at {provider} got no answer ({exc}); refund {refund.id} of "
                f"{refund.amount} {refund.currency} stays pending and is sent again with the "
                "same key",
                cause=cause,
                at=self._clock(),
                actor=actor,
            )

        await mutate(self._storage, order_id, note)

    async def retry_refunds(
        self, *, older_than: timedelta = REFUND_RETRY_AFTER, limit: int = 50
    ) -> int:
        """Send again the refunds the provider never answered; flag those too old to send,
        and those the provider has kept pending longer than :data:`REFUND_PENDING_LIMIT`.

        A refund is resent only while the provider still remembers its idempotency key
        (:meth:`_key_lifetime`): after that a resend could refund twice, so the order
        is flagged for a person to look at the provider instead. Returns how many were sent.
        """
        now = self._clock()
        async with self._storage() as uow:
            order_ids = await uow.orders.pending_refunds(
                updated_before=now - older_than, limit=limit
            )
        sent = 0
        for order_id in order_ids:
            order = await self._load(order_id)
            for refund in order.refunds:
                if refund.state is not RefundState.PENDING or refund.updated_at > now - older_than:
                    continue
                age = now - refund.created_at
                if refund.provider_ref is None and age < self._key_lifetime(order, refund):
                    sent += 1
                    with contextlib.suppress(RefundNotAllowed, ProviderUnreachable):
                        await self._send(order_id, refund, actor="janitor", cause=Cause.JANITOR)
                else:
                    at_provider = refund.provider_ref is not None
                    late = not at_provider or age >= REFUND_PENDING_LIMIT
                    await self._overdue(order_id, refund.id, flag=late)
        return sent

    async def _overdue(self, order_id: str, refund_id: str, *, flag: bool) -> None:
        """Flag a refund still pending past what a retry may cover (once per refund); a
        refund the provider is still processing (``flag=False``) is only looked at later."""

        def look(order: Order) -> None:
            refund = order.refund_tried(refund_id, at=self._clock())
            if flag and not any(refund.id in f.detail for f in order.flags):
                order.flag(
                    FlagReason.REFUND_FAILED,
                    f"refund {refund.id} of {refund.amount} {refund.currency} is still pending "
                    f"since {refund.created_at:%Y-%m-%d %H:%M} UTC"
                    + (
                        " with no answer from the provider: look it up there before refunding again"
                        if refund.provider_ref is None
                        else f" ({refund.provider_ref})"
                    ),
                    cause=Cause.JANITOR,
                    at=self._clock(),
                )

        await mutate(self._storage, order_id, look)

    async def cancel_order(self, order_id: str, *, actor: str, cause: Cause) -> Order:
        """Cancel an order that is not paid and has no payment in flight."""
        order = await self._load(order_id)
        if order.state is OrderState.CANCELLED:
            return order  # cancelling twice changes nothing
        _check_cancellable(order)
        if order.state is OrderState.ACTION_REQUIRED:
            await self._cancel_at_provider(order, cause)

        def cancel(order: Order) -> bool:
            if order.state is OrderState.CANCELLED:
                return False
            _check_cancellable(order)
            _cancel(order, actor=actor, cause=cause, at=self._clock())
            return True

        return (await mutate(self._storage, order_id, cancel)).order

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
        answer = Answered(attempt_id, outcome_of(result))
        settled = await settle(self._storage, order_id, [answer], cause=cause, clock=self._clock)
        return settled.order.state

    async def _load(self, order_id: str) -> Order:
        async with self._storage() as uow:
            order = await uow.orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order


def _check_cancellable(order: Order) -> None:
    if order.state not in CANCELLABLE:
        raise CancelNotAllowed(order.id, _WHY_NOT_CANCEL.get(order.state, f"it is {order.state}"))


def _cancel(order: Order, *, actor: str, cause: Cause, at: datetime) -> None:
    note = f"cancelled by {actor}"
    for attempt in order.attempts:
        if attempt.state is AttemptState.ACTION_REQUIRED:
            note += f"; attempt {attempt.seq} was cancelled at {attempt.provider}"
    order.cancel(decline_code=CANCELLED_BY_OPERATOR, cause=cause, at=at, note=note, actor=actor)


def _unanswered(provider: str, exc: Exception, refund: Refund) -> RefundUnanswered:
    amount = f"{refund.amount} {refund.currency}"
    return RefundUnanswered(provider, str(exc), refund_id=refund.id, amount=amount)
