"""Where an outbox event stands at each sink, and the merchant endpoints that receive them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from orderguard.domain.events import EventType, OutboxEvent


class DeliveryState(StrEnum):
    """An event's state at one sink."""

    #: Not yet delivered; tried again at ``next_attempt_at``.
    PENDING = "pending"
    #: The sink accepted it.
    DELIVERED = "delivered"
    #: Given up after the most attempts allowed; support can replay it.
    DEAD = "dead"


class Outcome(StrEnum):
    """How one delivery attempt went."""

    #: The sink accepted the event.
    DELIVERED = "delivered"
    #: The sink refused or could not be reached; the event is tried again later.
    FAILED = "failed"
    #: The sink refused or could not be reached for the last allowed time: dead letter.
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event at one sink."""

    id: int
    event: OutboxEvent
    sink: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    dead_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One try at delivering an event to a sink (what support sees)."""

    event_id: str
    sink: str
    at: datetime
    outcome: Outcome
    error: str | None
    relay: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A merchant URL that receives every event, signed with the endpoint's secrets."""

    id: str
    url: str
    created_at: datetime
    description: str = ""
    removed_at: datetime | None = None
    #: The operator allowed loopback and private addresses (``--allow-private``): a
    #: receiver on the shop's own host or network. Its answers' bodies are never kept.
    allow_private: bool = False

    @property
    def sink(self) -> str:
        """The sink name its deliveries are recorded under."""
        return webhook_sink(self.id)


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """A signing secret (``whsec_`` + base64); valid until ``expires_at`` (None: no end)."""

    id: str
    endpoint_id: str
    secret: str
    created_at: datetime
    expires_at: datetime | None = None

    def valid_at(self, at: datetime) -> bool:
        """Whether signatures are still made with this secret at ``at``."""
        return self.expires_at is None or at < self.expires_at


#: Sink names of the built-in sinks; merchant endpoints are ``webhook:<endpoint id>``.
EMAIL_SINK = "email"
STREAM_SINK = "stream"
#: Events a shopper is emailed about (the others concern the merchant and support only).
EMAILED_EVENTS = frozenset(
    {
        EventType.RECEIVED,
        EventType.ACTION_REQUIRED,
        EventType.PAID,
        EventType.PAYMENT_FAILED,
        EventType.REFUNDED,
        EventType.CANCELLED,
    }
)


def webhook_sink(endpoint_id: str) -> str:
    """The sink name of a merchant endpoint."""
    return f"webhook:{endpoint_id}"


def retry_delay(
    attempts: int, *, base_s: float, cap_s: float, rng: random.Random | None = None
) -> timedelta:
    """How long to wait before the next try after ``attempts`` failed ones.

    Exponential (``base_s``, doubled each time, at most ``cap_s``) with "equal jitter": half
    the step is fixed, the other half random, so many relays retrying one endpoint spread out
    while the wait still grows.
    """
    step = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    draw = (rng or random).random()
    return timedelta(seconds=step / 2 + draw * step / 2)


def next_after_failure(
    attempts: int, *, max_attempts: int, now: datetime, delay: timedelta
) -> datetime | None:
    """When a failed delivery is tried next, or ``None`` when it becomes a dead letter.

    ``attempts`` counts the failure just recorded.
    """
    return None if attempts >= max_attempts else now + delay
