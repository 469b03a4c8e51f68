"""The order and payment-attempt state machines as explicit transition tables.

State only moves forward (G6): every allowed move is listed here, and anything else
raises :class:`IllegalTransition` without changing anything.
"""

from __future__ import annotations

from enum import StrEnum

from orderguard.domain.errors import IllegalTransition


class OrderState(StrEnum):
    """Where an order stands."""

    #: Stored and acknowledged; no payment attempt has been sent yet.
    RECEIVED = "received"
    #: A payment attempt was sent and the provider is processing it.
    PAYMENT_PENDING = "payment_pending"
    #: The shopper must authenticate (3-D Secure / SCA) before the charge completes.
    ACTION_REQUIRED = "action_required"
    #: A charge was sent and its outcome is not known (timeout, reset, provider 5xx).
    PAYMENT_UNKNOWN = "payment_unknown"
    #: A definite decline; the shopper may pay again with another method.
    PAYMENT_FAILED = "payment_failed"
    #: The provider confirmed a successful charge of the order's total.
    PAID = "paid"
    #: The charge was refunded in full.
    REFUNDED = "refunded"
    #: Cancelled by the shopper, support, or the expiry of an abandoned order.
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the order has reached a final outcome."""
        return self in TERMINAL_ORDER_STATES


class AttemptState(StrEnum):
    """Where one payment attempt at a provider stands."""

    #: Sent to the provider, not yet final.
    PENDING = "pending"
    #: Waiting for the shopper to authenticate.
    ACTION_REQUIRED = "action_required"
    #: Sent, but the answer was lost; only the provider knows.
    UNKNOWN = "unknown"
    #: The provider charged the shopper.
    SUCCEEDED = "succeeded"
    #: The provider definitely did not charge the shopper.
    FAILED = "failed"
    #: The charge was refunded.
    REFUNDED = "refunded"

    @property
    def is_terminal(self) -> bool:
        """Whether the attempt has reached a final outcome."""
        return self in TERMINAL_ATTEMPT_STATES


_O = OrderState
#: Every allowed order move, source -> targets. ``paid`` may only become ``refunded``.
ORDER_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    _O.RECEIVED: frozenset({_O.PAYMENT_PENDING, _O.CANCELLED}),
    _O.PAYMENT_PENDING: frozenset(
        {_O.ACTION_REQUIRED, _O.PAYMENT_UNKNOWN, _O.PAYMENT_FAILED, _O.PAID}
    ),
    # not back to ``payment_pending``: a late "still pending" would take the shopper's
    # 3-D Secure link away (see the attempt table)
    _O.ACTION_REQUIRED: frozenset({_O.PAYMENT_UNKNOWN, _O.PAYMENT_FAILED, _O.PAID, _O.CANCELLED}),
    _O.PAYMENT_UNKNOWN: frozenset(
        {_O.PAYMENT_PENDING, _O.ACTION_REQUIRED, _O.PAYMENT_FAILED, _O.PAID}
    ),
    _O.PAYMENT_FAILED: frozenset({_O.PAYMENT_PENDING, _O.PAID, _O.CANCELLED}),
    _O.PAID: frozenset({_O.REFUNDED}),
    _O.REFUNDED: frozenset(),
    _O.CANCELLED: frozenset(),
}

#: Orders in these states have a final outcome.
TERMINAL_ORDER_STATES = frozenset({_O.PAID, _O.REFUNDED, _O.CANCELLED})

_A = AttemptState
#: Every allowed payment-attempt move, source -> targets.
ATTEMPT_TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    _A.PENDING: frozenset({_A.ACTION_REQUIRED, _A.UNKNOWN, _A.SUCCEEDED, _A.FAILED}),
    # not to ``unknown``: "no answer" from a charge call still in flight when a webhook
    # already said the shopper must authenticate is stale news, not a new state; nor to
    # ``pending``: a snapshot from before the 3-D Secure step (a late ``payment_intent.created``,
    # a ``processing`` or bare ``requires_payment_method``) would take the shopper's link away
    _A.ACTION_REQUIRED: frozenset({_A.SUCCEEDED, _A.FAILED}),
    _A.UNKNOWN: frozenset({_A.PENDING, _A.ACTION_REQUIRED, _A.SUCCEEDED, _A.FAILED}),
    _A.SUCCEEDED: frozenset({_A.REFUNDED}),
    _A.FAILED: frozenset(),
    _A.REFUNDED: frozenset(),
}

#: Attempts in these states have a final outcome.
TERMINAL_ATTEMPT_STATES = frozenset({_A.SUCCEEDED, _A.FAILED, _A.REFUNDED})


def check_order_transition(source: OrderState, target: OrderState) -> None:
    """Raise :class:`IllegalTransition` unless an order may move ``source`` -> ``target``."""
    if target not in ORDER_TRANSITIONS[source]:
        raise IllegalTransition("order", source, target)


def check_attempt_transition(source: AttemptState, target: AttemptState) -> None:
    """Raise :class:`IllegalTransition` unless an attempt may move ``source`` -> ``target``."""
    if target not in ATTEMPT_TRANSITIONS[source]:
        raise IllegalTransition("payment attempt", source, target)
