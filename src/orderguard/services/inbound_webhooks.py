"""The webhook inbox: verify, store, de-duplicate, then apply (G6, G7).

``receive`` runs in the provider's request: it verifies the signature and timestamp,
stores the raw event with its headers (once per provider event id) and answers; nothing
is applied yet. ``process`` applies a stored event after the answer was sent; a failure
is recorded with its error and a backoff, and ``process_due`` (run by the worker) takes
such events up again under a lease. A stored event is parsed without re-verifying it:
it was verified on arrival and may be older than the signature tolerance by now.

An event found on arrival to change nothing (:data:`AppliedAlready`: a type nobody acts on,
or a payment event its attempt already reflects) is stored processed by the same
statement that de-duplicates it, and nothing is left to apply. An event that is applied
is recorded processed in the transaction that settles its order, when there is one.

What an event does to its order is not decided here: the inbox is given an
:data:`ApplyEvent` by the composition root (``bootstrap.py`` gives
``WebhookEvents.apply`` and ``WebhookEvents.applied_already``), so it stores and dispatches
without knowing the services that act.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from orderguard.domain.backoff import webhook_retry_delay
from orderguard.domain.errors import InvalidWebhookSignature, UnknownWebhookProvider
from orderguard.domain.ids import new_id
from orderguard.domain.order import Order
from orderguard.providers.base import InvalidWebhook, PaymentProvider, WebhookEvent
from orderguard.services.clock import Clock, system_clock
from orderguard.services.providers import Providers, UnknownProvider
from orderguard.services.settling import Then
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory, WebhookRecord

log = logging.getLogger("orderguard.inbound_webhooks")
#: How long a worker holds the events it claimed before another may take them.
LEASE = timedelta(seconds=60)
#: How long a new event is left to the request's background task before the worker may
#: apply it (a task that died with its process leaves it to the worker).
HANDOFF = timedelta(seconds=30)
#: Request headers never stored with an event.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: A record given to :meth:`WebhookInbox.process` by the request that stored it is applied
#: without reading it back while at least this much of the handoff is left (no worker can
#: have claimed it yet, even with clocks that disagree by less).
TRUST_HANDED = HANDOFF / 2


class ApplyEvent(Protocol):
    """Applies one decoded event from the named provider to its order; returns the order's
    id (``None`` when the event concerns no order of ours) or raises to have it retried.
    ``then`` runs in the transaction that settles the order with the event's answer, if
    the event leads to one."""

    def __call__(
        self, provider: str, event: WebhookEvent, *, then: Then | None = None
    ) -> Awaitable[str | None]: ...


#: Reads, in the receiving unit of work, whether applying an event would change nothing;
#: if so, the order it concerns (as ``Applied``), else ``None``.
AppliedAlready = Callable[[UnitOfWork, str, WebhookEvent], Awaitable["Applied | None"]]


class Applied(Protocol):
    """An event that changes nothing, about ``order_id``."""

    @property
    def order_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Received:
    """The answer to one delivery."""

    #: The stored event; ``None`` for a duplicate delivery.
    record_id: str | None
    duplicate: bool
    #: The stored event, left to :meth:`WebhookInbox.process`; ``None`` for a duplicate
    #: and for an event handled on arrival (stored processed: nothing to apply).
    pending: WebhookRecord | None = None


class WebhookInbox:
    """Receives provider webhooks and applies them through the state machine."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        providers: Providers,
        apply: ApplyEvent,
        *,
        applied_already: AppliedAlready | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._providers = providers
        self._clock = clock
        self._apply = apply
        self._applied_already = applied_already
        #: Deliveries refused because their signature or timestamp did not verify.
        self.rejected = 0

    async def receive(self, provider: str, body: bytes, headers: Mapping[str, str]) -> Received:
        """Verify and store one delivery; raises ``InvalidWebhookSignature`` if it is forged."""
        event = self._verified(self._provider(provider), body, headers)
        now = self._clock()
        record = WebhookRecord(
            id=new_id("whk"),
            provider=provider,
            event_id=event.event_id,
            type=event.type,
            headers={k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS},
            body=body,
            received_at=now,
            order_id=event.payment.order_id if event.payment else None,
            # the answer's background task applies it; the worker takes over only if that
            # did not finish in time, so the two never apply one event at once
            next_attempt_at=now + HANDOFF,
        )
        async with self._storage() as uow:
            done = None
            if self._applied_already is not None:
                done = await self._applied_already(uow, provider, event)
            if done is not None:  # nothing to apply: stored processed, by the same insert
                record = replace(record, processed_at=now, order_id=done.order_id)
            fresh = await uow.webhooks.record(record)
            await uow.commit()
        if not fresh:
            return Received(None, duplicate=True)
        return Received(record.id, duplicate=False, pending=None if done else record)

    async def process(self, record_id: str, record: WebhookRecord | None = None) -> None:
        """Apply one stored event now; a failure is recorded for :meth:`process_due`.

        ``record``: the event as the request that stored it has it; applied without being
        read back while the worker cannot have taken it yet (:data:`TRUST_HANDED`)."""
        try:
            handed = record is not None and record.id == record_id
            if not handed or not self._still_handed(record):
                async with self._storage() as uow:
                    record = await uow.webhooks.get(record_id)
            if record is not None and record.processed_at is None:
                await self._process(record)
        except Exception:  # the event stays unprocessed; the worker takes it up again
            log.exception("webhook %s: processing could not be recorded", record_id)

    def _still_handed(self, record: WebhookRecord | None) -> bool:
        due = None if record is None else record.next_attempt_at
        return due is not None and self._clock() < due - TRUST_HANDED

    async def process_due(self, *, owner: str, limit: int = 100) -> int:
        """Claim unprocessed events whose next try is due and apply them; return successes."""
        now = self._clock()
        async with self._storage() as uow:
            due = await uow.webhooks.claim_unprocessed(
                now=now, owner=owner, until=now + LEASE, limit=limit
            )
            await uow.commit()
        return sum([await self._process(record) for record in due])

    async def _process(self, record: WebhookRecord) -> bool:
        recorded = False

        async def record_processed(uow: UnitOfWork, order: Order) -> None:
            nonlocal recorded  # in the settling transaction: it commits with the order
            await uow.webhooks.processed(record.id, at=self._clock(), order_id=order.id)
            recorded = True

        try:
            event = self._provider(record.provider).decode_webhook(record.body)
            order_id = await self._apply(record.provider, event, then=record_processed)
        except Exception as exc:
            await self._failed(record, exc)
            return False
        if not recorded:  # the event settled no order (or a recheck settled it): on its own
            async with self._storage() as uow:
                await uow.webhooks.processed(record.id, at=self._clock(), order_id=order_id)
                await uow.commit()
        return True

    async def _failed(self, record: WebhookRecord, exc: Exception) -> None:
        log.warning("webhook %s (%s) failed: %r", record.id, record.type, exc)
        delay = webhook_retry_delay(attempts=record.attempts + 1)
        async with self._storage() as uow:
            error = f"{type(exc).__name__}: {exc}"
            await uow.webhooks.failed(record.id, error=error, retry_at=self._clock() + delay)
            await uow.commit()

    def _provider(self, name: str) -> PaymentProvider:
        try:
            return self._providers.named(name).provider
        except UnknownProvider:
            raise UnknownWebhookProvider(name) from None

    def _verified(
        self, provider: PaymentProvider, body: bytes, headers: Mapping[str, str]
    ) -> WebhookEvent:
        try:
            return provider.parse_webhook(body, headers)
        except InvalidWebhook as exc:
            self.rejected += 1
            log.warning("webhook to %s rejected: %s", provider.name, exc)
            raise InvalidWebhookSignature(f"the webhook does not verify: {exc}") from None
