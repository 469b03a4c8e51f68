"""A refund as a record of its own: what was asked, by whom, and what the provider did.

A refund is created ``pending`` before the provider is called (so a crash loses nothing)
and moves at most once more: to ``succeeded`` or ``failed``. One exception, because card
refunds can fail days after the provider accepted them: a ``succeeded`` refund may still
become ``failed`` (the money did not reach the shopper after all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from orderguard.domain import ids


class RefundState(StrEnum):
    """Where one refund stands."""

    #: Stored, not yet confirmed by the provider (not called yet, no answer, or processing).
    PENDING = "pending"
    #: The provider gave the money back.
    SUCCEEDED = "succeeded"
    #: The provider refused it or it failed later: the shopper did not get this money back.
    FAILED = "failed"


#: Every allowed refund move, source -> targets.
REFUND_TRANSITIONS: dict[RefundState, frozenset[RefundState]] = {
    RefundState.PENDING: frozenset({RefundState.SUCCEEDED, RefundState.FAILED}),
    RefundState.SUCCEEDED: frozenset({RefundState.FAILED}),
    RefundState.FAILED: frozenset(),
}

#: Longest reason a person may give for a refund, in characters.
MAX_REASON = 500
#: The reason recorded for a refund made at the provider, not through orderguard.
MADE_AT_PROVIDER = "made at the provider, outside orderguard"
#: The prefix of the provider idempotency key of every refund (the refund's id follows).
PROVIDER_KEY_PREFIX = "orderguard-refund-"
#: Provider refund statuses that mean the money was given back / was not given back.
PROVIDER_SUCCEEDED = frozenset({"succeeded"})
PROVIDER_FAILED = frozenset({"failed", "canceled"})


def refund_state_of(provider_status: str) -> RefundState:
    """A provider's refund status, in the words adapters report it (``succeeded``,
    ``pending``, ``failed``, ``canceled``, ...), as a :class:`RefundState`."""
    if provider_status in PROVIDER_SUCCEEDED:
        return RefundState.SUCCEEDED
    if provider_status in PROVIDER_FAILED:
        return RefundState.FAILED
    return RefundState.PENDING  # pending, requires_action, or a status we do not know yet


@dataclass(slots=True)
class Refund:
    """Money given back (or to be given back) on one payment attempt of an order."""

    id: str
    order_id: str
    attempt_id: str
    #: ISO 4217 minor units, as the attempt was charged.
    amount: int
    currency: str
    #: Why, in a person's words (required from the console and the CLI).
    reason: str
    #: Who asked: an API key's id, a console user, a CLI actor, or ``provider``.
    requester: str
    #: What makes a repeated request the same refund (the client's Idempotency-Key, scoped).
    request_key: str
    created_at: datetime
    updated_at: datetime
    state: RefundState = RefundState.PENDING
    #: The provider's id of the refund, once it answered.
    provider_ref: str | None = None
    #: Why it failed, as the provider or orderguard words it.
    failure_reason: str | None = None
    #: How many times the provider was asked how this pending refund stands.
    checks: int = 0
    #: When it is next looked up at the provider (``None``: not looked up yet).
    next_check_at: datetime | None = None

    @classmethod
    def new(
        cls,
        *,
        order_id: str,
        attempt_id: str,
        amount: int,
        currency: str,
        reason: str,
        requester: str,
        request_key: str,
        at: datetime,
    ) -> Refund:
        """A new ``pending`` refund with its own id."""
        return cls(
            id=ids.new_id("rfd"),
            order_id=order_id,
            attempt_id=attempt_id,
            amount=amount,
            currency=currency,
            reason=reason,
            requester=requester,
            request_key=request_key,
            created_at=at,
            updated_at=at,
        )

    @property
    def provider_key(self) -> str:
        """The idempotency key every call to the provider for this refund sends."""
        return f"{PROVIDER_KEY_PREFIX}{self.id}"

    def looked_up(self, at: datetime, *, next_at: datetime) -> None:
        """Count one lookup at the provider and set when the next is due."""
        self.checks += 1
        self.next_check_at = next_at
        self.updated_at = max(self.updated_at, at)

    def may_move_to(self, target: RefundState) -> bool:
        """Whether ``target`` is a move forward from the current state."""
        return target in REFUND_TRANSITIONS[self.state]

    def fields(self) -> dict[str, Any]:
        """What the API shows of the refund (the request key is the client's secret-ish
        handle and stays out)."""
        return {
            "id": self.id,
            "attempt_id": self.attempt_id,
            "amount": self.amount,
            "currency": self.currency,
            "state": str(self.state),
            "reason": self.reason,
            "requester": self.requester,
            "provider_ref": self.provider_ref,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
