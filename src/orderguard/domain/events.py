"""What happened to an order: timeline entries (G7) and outbox events (G8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from orderguard.domain.states import OrderState


class Cause(StrEnum):
    """What caused a change; support users are named in ``TimelineEntry.actor``."""

    #: A merchant's API request.
    API = "api"
    #: A provider's webhook.
    WEBHOOK = "webhook"
    #: The janitor re-asking the provider.
    JANITOR = "janitor"
    #: The orphan and duplicate-charge sweep.
    SWEEP = "sweep"
    #: A settlement-report reconciliation.
    RECONCILIATION = "reconciliation"
    #: A support user, through the console or the CLI.
    SUPPORT = "support"
    #: The shopper, through the order status page.
    SHOPPER = "shopper"


class EntryKind(StrEnum):
    """What a timeline entry records."""

    #: The order moved from one state to another.
    STATE_CHANGED = "state_changed"
    #: The order got the review flag.
    FLAGGED = "flagged"
    #: A person cleared the review flag.
    FLAG_CLEARED = "flag_cleared"
    #: Something worth knowing that changed no state (e.g. a late webhook ignored).
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One append-only line of an order's history."""

    id: str
    order_id: str
    at: datetime
    kind: EntryKind
    from_state: OrderState | None
    to_state: OrderState
    cause: Cause
    note: str = ""
    actor: str | None = None
    request_id: str | None = None


class EventType(StrEnum):
    """The events relayed to sinks (shopper email, merchant webhooks, the stream)."""

    RECEIVED = "order.received"
    ACTION_REQUIRED = "order.action_required"
    PAID = "order.paid"
    PAYMENT_FAILED = "order.payment_failed"
    PAYMENT_UNKNOWN = "order.payment_unknown"
    FLAGGED = "order.flagged"
    REFUNDED = "order.refunded"
    CANCELLED = "order.cancelled"


#: The event an order emits on entering a state; states not listed emit none.
EVENT_FOR_STATE: dict[OrderState, EventType] = {
    OrderState.RECEIVED: EventType.RECEIVED,
    OrderState.ACTION_REQUIRED: EventType.ACTION_REQUIRED,
    OrderState.PAID: EventType.PAID,
    OrderState.PAYMENT_FAILED: EventType.PAYMENT_FAILED,
    OrderState.PAYMENT_UNKNOWN: EventType.PAYMENT_UNKNOWN,
    OrderState.REFUNDED: EventType.REFUNDED,
    OrderState.CANCELLED: EventType.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event committed with the change that caused it; ``id`` is stable for de-duplication."""

    id: str
    order_id: str
    type: EventType
    at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
