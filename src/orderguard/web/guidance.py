"""What the shopper's page says about an order: its state in words, and why a payment failed."""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.catalog import CATALOG
from orderguard.domain.events import EntryKind, TimelineEntry
from orderguard.domain.order import Order
from orderguard.domain.states import AttemptState, OrderState

#: Decline codes that say the same thing to a shopper as another code.
_SAME_WORDS = {
    "card_declined": "generic_decline",
    "do_not_honor": "generic_decline",
    "fraudulent": "lost_card",
    "stolen_card": "lost_card",
    "pickup_card": "lost_card",
    "invalid_cvc": "incorrect_cvc",
    "invalid_number": "incorrect_number",
    "authentication_required": "authentication_failed",
    "payment_intent_authentication_failure": "authentication_failed",
    "cancelled_by_operator": "canceled",
    "card_velocity_exceeded": "insufficient_funds",
    "withdrawal_count_limit_exceeded": "insufficient_funds",
}
#: How many state changes the shopper's page shows.
HISTORY_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Guidance:
    """Translation keys for what the page says, and what it offers to do."""

    state_key: str
    next_key: str
    why_key: str | None
    may_pay_again: bool
    authenticate_url: str | None
    refreshes: bool


def guidance(order: Order) -> Guidance:
    """What the shopper should read and may do about ``order`` now."""
    state = order.state
    why = why_failed(order) if state is OrderState.PAYMENT_FAILED else None
    authenticate = None
    if state is OrderState.ACTION_REQUIRED:
        waiting = [a for a in order.attempts if a.state is AttemptState.ACTION_REQUIRED]
        url = waiting[-1].redirect_url if waiting else None
        authenticate = url if url and url.startswith(("https://", "http://")) else None
    return Guidance(
        state_key=f"state.{state}",
        next_key=f"next.{state}",
        why_key=why,
        may_pay_again=state is OrderState.PAYMENT_FAILED,
        authenticate_url=authenticate,
        refreshes=not state.is_terminal,
    )


def why_failed(order: Order) -> str:
    """The translation key explaining the last failed attempt's decline code."""
    failed = [a for a in order.attempts if a.state is AttemptState.FAILED]
    code = failed[-1].decline_code if failed else None
    return decline_words(code)


def decline_words(code: str | None) -> str:
    """The translation key for decline ``code`` in a shopper's words."""
    key = f"why.{_SAME_WORDS.get(code or '', code or 'unknown')}"
    return key if key in CATALOG else "why.unknown"


def shopper_history(timeline: list[TimelineEntry]) -> list[TimelineEntry]:
    """The last state changes, newest first: nothing internal (no notes, no actors)."""
    changes = [e for e in timeline if e.kind is EntryKind.STATE_CHANGED]
    return list(reversed(changes))[:HISTORY_LENGTH]
