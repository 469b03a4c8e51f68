"""Waiting for an order's payment to settle: what its state means to the shop, and how
often to ask. An outcome that is not known yet is ``confirming``, never ``failed``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orderguard.client.models import (
    ACTION_REQUIRED,
    CANCELLED,
    PAID,
    PAYMENT_FAILED,
    REFUNDED,
    OrderDetail,
)

#: ``paid``: the provider confirmed the charge (a refunded order was paid too);
#: ``failed``: a definite decline or a cancelled order; ``action_required``: the shopper
#: must act (``order.next_action``); ``confirming``: the outcome is not known yet (pending,
#: or an answer the provider still owes): show "we are confirming your payment".
SettlementOutcome = Literal["paid", "failed", "action_required", "confirming"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """Where an order's payment stands, and the order as last read."""

    outcome: SettlementOutcome
    order: OrderDetail

    @property
    def settled(self) -> bool:
        """Whether the outcome is final (paid or failed)."""
        return self.outcome in ("paid", "failed")


def outcome_of(state: str) -> SettlementOutcome:
    """What an order state means to the shop; any state not known to be final (including
    one a newer server may add) is ``confirming``."""
    if state in (PAID, REFUNDED):
        return "paid"
    if state in (PAYMENT_FAILED, CANCELLED):
        return "failed"
    if state == ACTION_REQUIRED:
        return "action_required"
    return "confirming"


def poll_wait_s(*, polls: int, first_s: float, max_s: float) -> float:
    """Seconds to wait after the ``polls``-th read: doubling from ``first_s`` up to
    ``max_s`` (a slow confirmation is asked about rarely)."""
    return min(max_s, first_s * 2.0 ** max(0, polls - 1))
