"""The order aggregate: its lines, its shopper, its payment attempts and its history.

Every change goes through a method that checks the state machine and records a timeline
entry (and, where one is due, an outbox event) for the unit of work to store with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from orderguard.domain import ids
from orderguard.domain.customer import Customer
from orderguard.domain.errors import InvalidOrder
from orderguard.domain.events import (
    EVENT_FOR_STATE,
    Cause,
    EntryKind,
    EventType,
    OutboxEvent,
    TimelineEntry,
)
from orderguard.domain.flags import FlagReason, ReviewFlag, answered
from orderguard.domain.money import Money, is_currency
from orderguard.domain.refund_record import Refund, RefundState
from orderguard.domain.states import (
    AttemptState,
    OrderState,
    check_attempt_transition,
    check_order_transition,
)

#: Largest quantity of one line.
MAX_QUANTITY = 1_000_000
#: Largest price of one unit, in minor units.
MAX_UNIT_AMOUNT = 10**12
#: Largest order total, in minor units (exact in a JSON double and in BIGINT).
MAX_TOTAL = 10**15
#: Most lines one order may have.
MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_amount`` minor units."""

    sku: str
    name: str
    quantity: int
    unit_amount: int

    @property
    def amount(self) -> int:
        """What the line costs, in minor units."""
        return self.quantity * self.unit_amount


@dataclass(slots=True)
class PaymentAttempt:
    """One try at charging the order at one provider."""

    id: str
    order_id: str
    seq: int
    provider: str
    method: str
    amount: int
    currency: str
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    state: AttemptState = AttemptState.PENDING
    provider_ref: str | None = None
    decline_code: str | None = None
    redirect_url: str | None = None

    def move_to(self, target: AttemptState, *, at: datetime) -> None:
        """Move this attempt forward; raises ``IllegalTransition`` and changes nothing else."""
        check_attempt_transition(self.state, target)
        self.state = target
        self.updated_at = at

    def fail(self, decline_code: str, *, at: datetime) -> None:
        """Close this attempt as failed, for ``decline_code`` (e.g. cancelled by an operator,
        authentication abandoned); raises ``IllegalTransition`` and changes nothing."""
        check_attempt_transition(self.state, AttemptState.FAILED)
        self.decline_code = decline_code
        self.move_to(AttemptState.FAILED, at=at)


@dataclass(slots=True)
class Order:
    """An order a shopper submitted. Build new ones with :meth:`place`."""

    id: str
    state: OrderState
    currency: str
    lines: tuple[OrderLine, ...]
    customer: Customer
    status_token: str
    created_at: datetime
    updated_at: datetime
    merchant_reference: str | None = None
    locale: str = "en"
    #: The method to charge once a provider is available again (while waiting in received).
    payment_method: str | None = None
    #: Rechecks done in the current state, and when the last one (or the change) happened.
    checks: int = 0
    last_checked_at: datetime | None = None
    next_check_at: datetime | None = None
    version: int = 0
    #: Whether the order is charged at a provider account that moves real money (false:
    #: test mode, e.g. the sandbox or a ``sk_test_`` key): the account of its latest payment
    #: attempt (a fail-over account may be a test one), the primary's before any attempt.
    livemode: bool = False
    attempts: list[PaymentAttempt] = field(default_factory=list)
    #: Every review flag the order ever had, open and cleared, oldest first.
    flags: list[ReviewFlag] = field(default_factory=list)
    #: Every refund asked for or reported by the provider, oldest first.
    refunds: list[Refund] = field(default_factory=list)
    #: Entries and events recorded since the order was loaded, for the unit of work to store.
    new_entries: list[TimelineEntry] = field(default_factory=list)
    new_events: list[OutboxEvent] = field(default_factory=list)

    @classmethod
    def place(
        cls,
        *,
        currency: str,
        lines: list[OrderLine],
        customer: Customer,
        at: datetime,
        merchant_reference: str | None = None,
        locale: str = "en",
        cause: Cause = Cause.API,
        request_id: str | None = None,
        order_id: str | None = None,
        livemode: bool = False,
    ) -> Order:
        """A new order in ``received``; raises :class:`InvalidOrder` naming every problem.

        ``order_id`` is given only to rebuild a lost order under its original id;
        ``livemode``: whether the account it would be charged at moves real money.
        """
        _check_lines(currency, lines)
        order = cls(
            id=order_id or ids.new_id("ord"),
            state=OrderState.RECEIVED,
            currency=currency,
            lines=tuple(lines),
            customer=customer,
            status_token=ids.new_token(),
            created_at=at,
            updated_at=at,
            merchant_reference=merchant_reference,
            locale=locale,
            last_checked_at=at,
            livemode=livemode,
        )
        order._record(EntryKind.STATE_CHANGED, None, "order received", cause, at, None, request_id)
        order._emit(EventType.RECEIVED, at)
        return order

    @property
    def total(self) -> Money:
        """The order's total, computed from its lines."""
        return Money(sum(line.amount for line in self.lines), self.currency)

    @property
    def is_terminal(self) -> bool:
        """Whether the order has reached a final outcome."""
        return self.state.is_terminal

    @property
    def open_flags(self) -> list[ReviewFlag]:
        """The flags a person still has to look at; the order is in the review queue if any."""
        return [f for f in self.flags if f.is_open]

    @property
    def flag_reason(self) -> str | None:
        """The first open flag's text (the single reason orders had before version 7)."""
        first = next(iter(self.open_flags), None)
        return first.text if first else None

    @property
    def amount_paid(self) -> int:
        """Minor units charged for the order: every attempt that succeeded (refunded or not)."""
        charged = (AttemptState.SUCCEEDED, AttemptState.REFUNDED)
        return sum(a.amount for a in self.attempts if a.state in charged)

    @property
    def amount_refunded(self) -> int:
        """Minor units the provider gave back: the sum of the succeeded refunds."""
        return sum(r.amount for r in self.refunds if r.state is RefundState.SUCCEEDED)

    @property
    def amount_refundable(self) -> int:
        """What may still be refunded: paid, less succeeded and pending refunds."""
        held = sum(r.amount for r in self.refunds if r.state is not RefundState.FAILED)
        return max(0, self.amount_paid - held)

    @property
    def partially_refunded(self) -> bool:
        """Paid, and some but not all of the money given back."""
        return self.state is OrderState.PAID and 0 < self.amount_refunded < self.amount_paid

    def refund(self, refund_id: str) -> Refund | None:
        """The order's refund ``refund_id``, if it has one."""
        return next((r for r in self.refunds if r.id == refund_id), None)

    def open_flag(self, reason: FlagReason) -> ReviewFlag | None:
        """The open flag for ``reason``, if there is one."""
        return next((f for f in self.open_flags if f.reason is reason), None)

    def move_to(
        self,
        target: OrderState,
        *,
        cause: Cause,
        at: datetime,
        note: str = "",
        actor: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Move the order forward; raises ``IllegalTransition`` and changes nothing."""
        check_order_transition(self.state, target)
        source, self.state, self.updated_at = self.state, target, at
        self.checks, self.last_checked_at, self.next_check_at = 0, at, None
        self._record(EntryKind.STATE_CHANGED, source, note, cause, at, actor, request_id)
        if target in EVENT_FOR_STATE:
            self._emit(EVENT_FOR_STATE[target], at)
        self._clear_answered(cause, at, actor, request_id)

    def start_attempt(
        self,
        attempt: PaymentAttempt,
        *,
        cause: Cause,
        at: datetime,
        note: str = "",
        livemode: bool | None = None,
    ) -> None:
        """Charge the order with ``attempt`` (at an account that moves real money or not;
        ``None``: as the order says already): the order moves to ``payment_pending`` and
        stops waiting for a provider; raises ``IllegalTransition`` and changes nothing."""
        check_order_transition(self.state, OrderState.PAYMENT_PENDING)
        self.attempts.append(attempt)
        if livemode is not None:  # the account this attempt charges, fail-over or not
            self.livemode = livemode
        self.payment_method = None
        self.move_to(OrderState.PAYMENT_PENDING, cause=cause, at=at, note=note)

    def wait_for_provider(self, method: str, note: str, *, cause: Cause, at: datetime) -> None:
        """No provider can take the charge now: keep ``method`` to charge once one can."""
        self.payment_method = method
        self.note(note, cause=cause, at=at)

    def cancel(
        self,
        *,
        decline_code: str,
        cause: Cause,
        at: datetime,
        note: str,
        actor: str | None = None,
    ) -> None:
        """Cancel the order: each payment awaiting authentication fails with
        ``decline_code`` (it was cancelled at its provider first) and nothing waits to be
        charged any more; raises ``IllegalTransition`` and changes nothing."""
        check_order_transition(self.state, OrderState.CANCELLED)
        for attempt in self.attempts:
            if attempt.state is AttemptState.ACTION_REQUIRED:
                attempt.fail(decline_code, at=at)
        self.payment_method = None
        self.move_to(OrderState.CANCELLED, cause=cause, at=at, note=note, actor=actor)

    def flag(
        self,
        reason: FlagReason,
        detail: str,
        *,
        cause: Cause,
        at: datetime,
        actor: str | None = None,
    ) -> bool:
        """Put the order in the review queue for ``reason``, beside any other open reason.

        A reason that is open already is not raised twice (``False``): the new detail goes
        on the timeline as a note, so nothing is lost and nothing is overwritten.
        """
        raised = ReviewFlag(ids.new_id("flg"), reason, detail, actor or str(cause), at)
        if self.open_flag(reason) is not None:
            self.note(f"already flagged, {raised.text}", cause=cause, at=at, actor=actor)
            return False
        self.flags.append(raised)
        self.updated_at = at
        self._record(EntryKind.FLAGGED, self.state, raised.text, cause, at, actor, None)
        self._emit(EventType.FLAGGED, at, reason=raised.text, reason_code=str(reason))
        return True

    def clear_flag(self, reason: FlagReason, comment: str, *, actor: str, at: datetime) -> bool:
        """A person clears one open reason, saying why; the others stay. ``False`` if none."""
        flag = self.open_flag(reason)
        if flag is None:
            return False
        self._clear(flag, by=actor, at=at)
        note = f"{reason} cleared: {comment}"
        self._record(EntryKind.FLAG_CLEARED, self.state, note, Cause.SUPPORT, at, actor, None)
        return True

    def _clear_answered(
        self, cause: Cause, at: datetime, actor: str | None, request_id: str | None
    ) -> None:
        """Clear the open flags the order's new state answers (see ``ANSWERED_BY``)."""
        for flag in self.open_flags:
            if answered(flag.reason, state=self.state):
                self._clear(flag, by=actor or str(cause), at=at)
                note = f"{flag.reason} answered: the order is {self.state}"
                kind = EntryKind.FLAG_CLEARED
                self._record(kind, self.state, note, cause, at, actor, request_id)

    def _clear(self, flag: ReviewFlag, *, by: str, at: datetime) -> None:
        self.flags[self.flags.index(flag)] = replace(flag, cleared_at=at, cleared_by=by)
        self.updated_at = at

    def checked(self, at: datetime, *, next_at: datetime) -> None:
        """The janitor asked the provider about this order and it stayed where it was."""
        self.checks, self.last_checked_at, self.next_check_at = self.checks + 1, at, next_at

    def check_at(self, next_at: datetime) -> None:
        """The janitor looks at this order next at ``next_at`` (no check counted)."""
        self.next_check_at = next_at

    def refund_tried(self, refund_id: str, *, at: datetime) -> Refund:
        """A pending refund was sent again or looked at (``at``): the next retry waits from
        then. Returns the refund; raises ``KeyError`` when the order has none by that id."""
        refund = self.refund(refund_id)
        if refund is None:
            raise KeyError(refund_id)
        refund.updated_at = at
        return refund

    def attribute_to(self, actor: str) -> None:
        """Name ``actor`` on the entries recorded since the order was loaded that name
        nobody yet: who asked for the changes (an API key, a support user)."""
        self.new_entries[:] = [replace(e, actor=e.actor or actor) for e in self.new_entries]

    def note(self, text: str, *, cause: Cause, at: datetime, actor: str | None = None) -> None:
        """Add a timeline note that changes nothing else (e.g. an ignored late webhook)."""
        self._record(EntryKind.NOTE, self.state, text, cause, at, actor, None)

    def snapshot(self) -> dict[str, Any]:
        """A compact, personal-data-free description used in event payloads."""
        return {
            "order_id": self.id,
            "state": str(self.state),
            "amount_total": self.total.amount,
            "currency": self.currency,
            "merchant_reference": self.merchant_reference,
            "flag_reason": self.flag_reason,
        }

    def _record(
        self,
        kind: EntryKind,
        source: OrderState | None,
        note: str,
        cause: Cause,
        at: datetime,
        actor: str | None,
        request_id: str | None,
    ) -> None:
        self.new_entries.append(
            TimelineEntry(
                id=ids.new_id("tle"),
                order_id=self.id,
                at=at,
                kind=kind,
                from_state=source,
                to_state=self.state,
                cause=cause,
                note=note,
                actor=actor,
                request_id=request_id,
            )
        )

    def _emit(self, event_type: EventType, at: datetime, **extra: Any) -> None:
        payload = {**self.snapshot(), **extra}
        event = OutboxEvent(ids.new_id("evt"), self.id, event_type, at, payload)
        self.new_events.append(event)


def _check_lines(currency: str, lines: list[OrderLine]) -> None:
    errors: list[tuple[tuple[str | int, ...], str]] = []
    if not is_currency(currency):
        errors.append((("currency",), f"{currency!r} is not a payable ISO 4217 currency code"))
    if not 1 <= len(lines) <= MAX_LINES:
        errors.append((("items",), f"an order needs between 1 and {MAX_LINES} items"))
    for index, line in enumerate(lines):
        if not 1 <= line.quantity <= MAX_QUANTITY:
            errors.append((("items", index, "quantity"), f"must be 1 to {MAX_QUANTITY}"))
        if not 0 <= line.unit_amount <= MAX_UNIT_AMOUNT:
            errors.append((("items", index, "unit_amount"), f"must be 0 to {MAX_UNIT_AMOUNT}"))
    if not errors and sum(line.amount for line in lines) > MAX_TOTAL:
        errors.append((("items",), f"the order total exceeds {MAX_TOTAL} minor units"))
    if errors:
        raise InvalidOrder(errors)
