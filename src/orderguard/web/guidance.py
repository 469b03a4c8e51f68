"""What the shopper's page says about an order: its state in words, why a payment failed,
and what to do outside the shop (a page to open, a wallet's code to scan).

A wallet is known by its payment method having a name in the catalog (``wallet.<method>``):
its states are worded with that name (``state.<state>.wallet``, ``next.<state>.wallet``
where the catalog has them), and a method's own scanning words are ``scan.<method>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderguard.catalog import CATALOG
from orderguard.domain.events import EntryKind, TimelineEntry
from orderguard.domain.order import Order
from orderguard.domain.states import AttemptState, OrderState
from orderguard.services.shopper_action import ActionKind, ShopperAction, is_openable

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
    #: The page the button opens (3-D Secure, a wallet's cashier): ``https://`` only
    #: (``http://`` too for a test order).
    authenticate_url: str | None
    refreshes: bool
    #: The button's words (``{wallet}`` filled in).
    button_key: str = "page.authenticate"
    #: The key of the wallet's name the words name as ``{wallet}``; ``None``: no wallet.
    wallet_key: str | None = None
    #: The text of the code to scan (shown as a QR code, never as a link).
    code: str | None = None
    #: Until when the shopper may pay outside the shop.
    pay_by: datetime | None = None

    def history_key(self, state: str) -> str:
        """The translation key of a past ``state`` in this order's words (its wallet's)."""
        return _worded(f"state.{state}", self.wallet_key)


def guidance(order: Order, action: ShopperAction | None) -> Guidance:
    """What the shopper should read and may do about ``order`` now, ``action`` being what
    the payments say the shopper must do outside the shop (``Payments.shopper_action``)."""
    state = order.state
    wallet = _wallet_key(order)
    state_key, next_key = _worded(f"state.{state}", wallet), _worded(f"next.{state}", wallet)
    authenticate = code = None
    if state is OrderState.ACTION_REQUIRED and action is not None:
        if action.kind is ActionKind.SCAN_QR_CODE:
            code, state_key = action.url, "state.action_required.scan"
            next_key = _present(f"scan.{action.method}") or "scan.any"
        elif is_openable(action.url, livemode=order.livemode):
            authenticate = action.url
    shown = code or authenticate
    if state is OrderState.ACTION_REQUIRED and not shown:
        next_key = "next.action_required.unavailable"  # nothing safe to show: no button
    return Guidance(
        state_key=state_key,
        next_key=next_key,
        why_key=why_failed(order) if state is OrderState.PAYMENT_FAILED else None,
        may_pay_again=state is OrderState.PAYMENT_FAILED,
        authenticate_url=authenticate,
        refreshes=not state.is_terminal,
        button_key="page.open_wallet" if wallet else "page.authenticate",
        wallet_key=wallet,
        code=code,
        pay_by=action.expires_at if shown and action is not None else None,
    )


def _wallet_key(order: Order) -> str | None:
    """``wallet.<method>`` of the order's last attempt, when the catalog names it."""
    return _present(f"wallet.{order.attempts[-1].method}") if order.attempts else None


def _worded(key: str, wallet: str | None) -> str:
    """``key``, or its wallet wording when the order pays by a wallet and the catalog has one."""
    return (_present(f"{key}.wallet") if wallet else None) or key


def _present(key: str) -> str | None:
    return key if key in CATALOG else None


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
