"""When an order is stuck: the one definition the console, ``orderguard orders list
--stuck``, the metrics, ``doctor`` and the alert rules use.

An order is stuck when it waits on an answer only the provider can give (its payment is
``payment_pending`` or ``payment_unknown``) and has not changed for :data:`STUCK_AFTER`.
Nobody but orderguard and the provider can move such an order on, so a person should look.

``action_required`` is not stuck: the next step is the shopper's (3-D Secure), and an
order the shopper abandons is cancelled at the provider by the expiry
(``services/expiry.py``), on a deadline of its own. Neither are ``received`` (no payment
asked for yet, or one waiting for a provider's circuit to close, which the circuit alert
covers) and ``payment_failed`` (the shopper may pay again): they wait on the shopper.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orderguard.domain.states import OrderState

#: The states in which an order waits on the provider's answer.
STUCK_STATES: frozenset[OrderState] = frozenset(
    {OrderState.PAYMENT_PENDING, OrderState.PAYMENT_UNKNOWN}
)
#: How long an order may stay unchanged in one of :data:`STUCK_STATES` before it is stuck.
STUCK_AFTER = timedelta(minutes=30)


def stuck_horizon(*, now: datetime, after: timedelta = STUCK_AFTER) -> datetime:
    """The moment before which an order in :data:`STUCK_STATES` must have last changed to
    be stuck at ``now`` (``after``: a shorter or longer look, as the console allows)."""
    return now - after


def is_stuck(
    state: OrderState, *, changed_at: datetime, now: datetime, after: timedelta = STUCK_AFTER
) -> bool:
    """Whether an order in ``state``, last changed at ``changed_at``, is stuck at ``now``."""
    return state in STUCK_STATES and changed_at < stuck_horizon(now=now, after=after)
