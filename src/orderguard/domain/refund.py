"""Refunds of an order, as records that add up (G6, G7).

An operator's refund is stored ``pending`` before the provider is called
(:func:`request_refund`), then settled from the provider's answer (:func:`settle_refund`).
A provider's report about a refund (a webhook) is matched to the record by the provider's
refund id, else by the ``refund_id`` orderguard put in its metadata, else recorded as a
refund made at the provider (:func:`apply_provider_refund`), so the sum is right whoever
made it. Sums are of distinct records, so a repeated or late report never counts twice.

An attempt whose whole charge was given back moves to ``refunded``; the order moves from
``paid`` to ``refunded`` once no charge of it is left unrefunded. Before that a paid order
with some money given back is *partially refunded* (a property, not a state: it is still
paid, still refundable, and every reader of ``paid`` stays right).

A refund that fails after it succeeded (a card refund can fail days later) means the
shopper did not get that money back: ``amount_refunded`` goes down again, and the order is
flagged for review, once per refund. It never moves the order backwards (G6).
"""

from __future__ import annotations

from datetime import datetime

from orderguard.domain import ids
from orderguard.domain.errors import (
    IdempotencyKeyReused,
    RefundExceedsRefundable,
    RefundNotAllowed,
)
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund_record import (
    MADE_AT_PROVIDER,
    Refund,
    RefundState,
)
from orderguard.domain.states import AttemptState, OrderState

#: Order states in which a refund may be asked for (``refunded``: when one failed later).
REFUNDABLE_STATES = frozenset({OrderState.PAID, OrderState.REFUNDED})
#: Attempt states whose charge holds money.
_CHARGED = frozenset({AttemptState.SUCCEEDED, AttemptState.REFUNDED})


def left_on(order: Order, attempt: PaymentAttempt) -> int:
    """What may still be refunded of ``attempt``'s charge (succeeded and pending count)."""
    held = sum(
        r.amount
        for r in order.refunds
        if r.attempt_id == attempt.id and r.state is not RefundState.FAILED
    )
    return max(0, attempt.amount - held) if attempt.state in _CHARGED else 0


def refunded_on(order: Order, attempt: PaymentAttempt) -> int:
    """What the provider gave back of ``attempt``'s charge."""
    return sum(
        r.amount
        for r in order.refunds
        if r.attempt_id == attempt.id and r.state is RefundState.SUCCEEDED
    )


def request_refund(
    order: Order,
    *,
    amount: int | None,
    reason: str,
    requester: str,
    request_key: str | None,
    cause: Cause,
    at: datetime,
) -> Refund:
    """The refund for ``request_key``: the one made before, or a new ``pending`` one.

    ``amount=None`` asks for all that is left. Without a ``request_key`` (a client that
    sends no Idempotency-Key) a refund the same requester asked for, for the same amount,
    that the provider never answered is the one returned: repeating it is safe (same
    provider key), making a second one is not. Raises :class:`RefundNotAllowed` (the order
    is not paid), :class:`RefundExceedsRefundable` (naming what is left) or
    :class:`IdempotencyKeyReused` (the key was used for another amount).
    """
    if request_key is None:  # no client key: resume the requester's unanswered refund
        earlier = _unanswered(order, requester=requester, amount=amount)
        request_key = ids.new_id("req")
    else:
        earlier = next((r for r in order.refunds if r.request_key == request_key), None)
    if earlier is not None:
        if amount is not None and amount != earlier.amount:
            raise IdempotencyKeyReused(
                f"this Idempotency-Key already asked for a refund of {earlier.amount} "
                f"{earlier.currency} ({earlier.id}), not {amount}"
            )
        return earlier
    attempt = _target(order)
    left = left_on(order, attempt)
    wanted = left if amount is None else amount
    if not 0 < wanted <= left:
        raise RefundExceedsRefundable(
            order.id, amount=wanted, refundable=left, currency=attempt.currency
        )
    refund = Refund.new(
        order_id=order.id,
        attempt_id=attempt.id,
        amount=wanted,
        currency=attempt.currency,
        reason=reason,
        requester=requester,
        request_key=request_key,
        at=at,
    )
    order.refunds.append(refund)
    order.updated_at = at
    order.note(
        f"refund {refund.id} of {wanted} {attempt.currency} asked on attempt {attempt.seq} "
        f"by {requester}: {reason or 'no reason given'}",
        cause=cause,
        at=at,
        actor=requester,
    )
    return refund


def _unanswered(order: Order, *, requester: str, amount: int | None) -> Refund | None:
    return next(
        (
            r
            for r in reversed(order.refunds)  # the latest first: it took the rest, if any
            if r.state is RefundState.PENDING
            and r.provider_ref is None
            and r.requester == requester
            and (amount == r.amount or (amount is None and _took_the_rest(order, r)))
        ),
        None,
    )


def _took_the_rest(order: Order, refund: Refund) -> bool:
    """Whether ``refund`` asked for all that was left on its attempt (nothing is left)."""
    attempt = next((a for a in order.attempts if a.id == refund.attempt_id), None)
    return attempt is not None and left_on(order, attempt) == 0


def _target(order: Order) -> PaymentAttempt:
    """The charged attempt with the most left to refund; raises :class:`RefundNotAllowed`."""
    if order.state not in REFUNDABLE_STATES:
        raise RefundNotAllowed(order.id, f"it is {order.state}; only a paid order is refunded")
    charged = [a for a in order.attempts if a.state in _CHARGED and a.provider_ref]
    if not charged:
        raise RefundNotAllowed(order.id, "no payment attempt of it succeeded")
    return max(charged, key=lambda a: (left_on(order, a), -a.seq))


def settle_refund(
    order: Order,
    refund: Refund,
    target: RefundState,
    *,
    provider_ref: str | None,
    failure_reason: str | None,
    cause: Cause,
    at: datetime,
    actor: str | None = None,
    accepted: bool = True,
) -> bool:
    """Apply what the provider says about ``refund``; ``False`` when it changes nothing.

    ``accepted=False`` means the provider refused the request outright (nothing was ever
    given back): the refund fails without a flag. A refund that fails after the provider
    accepted it flags the order (:data:`FlagReason.REFUND_FAILED`).
    """
    if provider_ref and refund.provider_ref is None:
        refund.provider_ref, refund.updated_at = provider_ref, at
        reported = _absorb_twin(order, refund, cause=cause, at=at)
        if reported is not None and target is RefundState.PENDING:
            # the webhook that overtook this answer already said how the refund ended
            target, failure_reason = reported
    if target is refund.state or not refund.may_move_to(target):
        return False  # a repeat, or a late report of an earlier state
    was, refund.state, refund.updated_at = refund.state, target, at
    order.updated_at = at
    attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
    what = f"refund {refund.id} of {refund.amount} {refund.currency}"
    if target is RefundState.SUCCEEDED:
        what = f"{what} at {attempt.provider} ({refund.provider_ref})"
        moved = _maybe_refunded(order, attempt, what, cause=cause, at=at, actor=actor)
        if order.amount_refunded > order.amount_paid:
            _flag_over_refund(order, what, cause=cause, at=at)
        elif not moved:
            left = order.amount_paid - order.amount_refunded
            partial = "partial " if left > 0 else ""
            note = f"{partial}{what} succeeded; {left} {refund.currency} not refunded"
            order.note(f"{note}, the order stays {order.state}", cause=cause, at=at, actor=actor)
        return True
    refund.failure_reason = failure_reason or "no reason given"
    if accepted or was is RefundState.SUCCEEDED:
        apply_refund_failure(
            order,
            attempt,
            refund_ref=refund.provider_ref or refund.id,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.failure_reason,
            cause=cause,
            at=at,
        )
    else:
        note = f"{what} refused by {attempt.provider}: {refund.failure_reason}"
        order.note(note, cause=cause, at=at, actor=actor)
    return True


def _flag_over_refund(order: Order, what: str, *, cause: Cause, at: datetime) -> None:
    """Flag ``order``: with ``what``, the provider reports more given back than was paid.

    It happens when a refund orderguard counts failed at the provider and the report of
    that failure has not arrived yet, or someone refunded at the provider too: either
    way a person should look. The order keeps its state (G6)."""
    if order.open_flag(FlagReason.REFUNDED_MORE_THAN_PAID) is not None:
        return
    detail = (
        f"{what} succeeded; {order.amount_refunded} is counted as refunded of "
        f"{order.amount_paid} paid, the order stays {order.state}"
    )
    order.flag(FlagReason.REFUNDED_MORE_THAN_PAID, detail, cause=cause, at=at)


def _absorb_twin(
    order: Order, refund: Refund, *, cause: Cause, at: datetime
) -> tuple[RefundState, str | None] | None:
    """A webhook that overtook our refund's answer, without our ``refund_id`` in its
    metadata, recorded the same provider refund as made at the provider: that twin stops
    counting (``failed``, naming ``refund``), so the money is counted once. Returns how the
    provider said the refund ended (its state and failure reason) when the twin knew more
    than ``pending``, so ``refund`` takes it over instead of losing it."""
    reported: tuple[RefundState, str | None] | None = None
    for twin in order.refunds:
        same = twin is not refund and twin.provider_ref == refund.provider_ref
        if same and twin.requester == "provider" and twin.state is not RefundState.FAILED:
            if twin.state is not RefundState.PENDING:
                reported = (twin.state, twin.failure_reason)
            twin.state, twin.updated_at = RefundState.FAILED, at
            twin.failure_reason = f"the same provider refund as {refund.id}"
            order.note(
                f"refund {twin.id} was {refund.id} reported before its answer; counted once",
                cause=cause,
                at=at,
            )
    return reported


def _maybe_refunded(
    order: Order,
    attempt: PaymentAttempt,
    what: str,
    *,
    cause: Cause,
    at: datetime,
    actor: str | None,
) -> bool:
    """Move the attempt, and the order, to ``refunded`` once all their money is back;
    ``True`` when the order moved."""
    if attempt.state is AttemptState.SUCCEEDED and refunded_on(order, attempt) >= attempt.amount:
        attempt.move_to(AttemptState.REFUNDED, at=at)
    all_back = order.amount_paid > 0 and order.amount_refunded >= order.amount_paid
    if order.state is not OrderState.PAID or not all_back:
        return False
    note = f"{what}: all {order.amount_paid} {attempt.currency} paid is refunded"
    order.move_to(OrderState.REFUNDED, cause=cause, at=at, note=note, actor=actor)
    return True


def apply_provider_refund(
    order: Order,
    attempt: PaymentAttempt,
    *,
    refund_ref: str,
    amount: int,
    currency: str,
    status: RefundState,
    failure_reason: str | None,
    refund_id: str | None,
    cause: Cause,
    at: datetime,
) -> Refund:
    """Apply a provider's report of one refund of ``attempt``'s charge (a webhook).

    The record is found by the provider's refund id, else by our ``refund_id`` (sent in
    the refund's metadata), else created: a refund made at the provider is money given
    back all the same.
    """
    refund = next((r for r in order.refunds if r.provider_ref == refund_ref), None)
    if refund is None and refund_id is not None:
        refund = order.refund(refund_id)
        if refund is not None and refund.provider_ref not in (None, refund_ref):
            refund = None  # metadata naming another refund than the provider's id: not ours
    if refund is None:
        refund = Refund.new(
            order_id=order.id,
            attempt_id=attempt.id,
            amount=amount,
            currency=currency,
            reason=MADE_AT_PROVIDER,
            requester="provider",
            request_key=f"provider:{refund_ref}",
            at=at,
        )
        refund.provider_ref = refund_ref
        order.refunds.append(refund)
        order.note(
            f"refund {refund_ref} of {amount} {currency} on attempt {attempt.seq} was made at "
            f"{attempt.provider}, not through orderguard; recorded as {refund.id}",
            cause=cause,
            at=at,
        )
    settle_refund(
        order,
        refund,
        status,
        provider_ref=refund_ref,
        failure_reason=failure_reason,
        cause=cause,
        at=at,
    )
    return refund


def apply_refund_failure(
    order: Order,
    attempt: PaymentAttempt | None,
    *,
    refund_ref: str,
    amount: int,
    currency: str,
    reason: str | None,
    cause: Cause,
    at: datetime,
) -> None:
    """Flag ``order``: refund ``refund_ref`` failed and the shopper was not paid back."""
    whose = f"attempt {attempt.seq}" if attempt is not None else "a payment we do not know"
    detail = (
        f"refund {refund_ref} of {amount} {currency} on {whose} failed at the provider "
        f"({reason or 'no reason given'}); the shopper was not paid back, the order stays "
        f"{order.state}"
    )
    flagged = order.open_flag(FlagReason.REFUND_FAILED)
    if flagged is not None and flagged.detail == detail:
        return  # the same failure reported again (another event about the same refund)
    order.flag(FlagReason.REFUND_FAILED, detail, cause=cause, at=at)


def refunds_before_paid(
    order: Order, attempt: PaymentAttempt, *, cause: Cause, at: datetime
) -> None:
    """Count refunds reported before ``attempt``'s own success (a refund webhook that
    overtook the payment's): once the order is paid, all of it refunded makes it
    ``refunded``, as if the reports had come in order."""
    if any(r.attempt_id == attempt.id for r in order.refunds):
        what = f"refunds reported before attempt {attempt.seq} was paid"
        _maybe_refunded(order, attempt, what, cause=cause, at=at, actor=None)
