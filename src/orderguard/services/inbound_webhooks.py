"""The webhook inbox: verify, store, de-duplicate, then apply (G6, G7).

``receive`` runs in the provider's request: it verifies the signature and timestamp,
stores the raw event with its headers (once per provider event id) and answers; nothing
is applied yet. ``process`` applies a stored event after the answer was sent; a failure
is recorded with its error and a backoff, and ``process_due`` (run by the worker) takes
such events up again under a lease. A stored event is parsed without re-verifying it:
it was verified on arrival and may be older than the signature tolerance by now.

What an event does to its order is not decided here: the inbox is given an
:data:`ApplyEvent` by the composition root (``bootstrap.py`` gives
``WebhookEvents.apply``), so it stores and dispatches without knowing the services that act.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from orderguard.domain.backoff import webhook_retry_delay
from orderguard.domain.errors import InvalidWebhookSignature, UnknownWebhookProvider
from orderguard.domain.ids import new_id
from orderguard.providers.base import InvalidWebhook, PaymentProvider, WebhookEvent
from orderguard.services.clock import Clock, system_clock
from orderguard.services.providers import Providers, UnknownProvider
from orderguard.storage.ports import UnitOfWorkFactory, WebhookRecord

log = logging.getLogger("orderguard.inbound_webhooks")
#: How long a worker holds the events it claimed before another may take them.
LEASE = timedelta(seconds=60)
#: How long a new event is left to the request's background task before the worker may
#: apply it (a task that died with its process leaves it to the worker).
HANDOFF = timedelta(seconds=30)
#: Request headers never stored with an event.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: Applies one decoded event from the named provider to its order; returns the order's id
#: (``None`` when the event concerns no order of ours) or raises to have it retried.
ApplyEvent = Callable[[str, WebhookEvent], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Received:
    """The answer to one delivery."""

    #: The stored event to process; ``None`` for a duplicate delivery.
    record_id: str | None
    duplicate: bool


class WebhookInbox:
    """Receives provider webhooks and applies them through the state machine."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        providers: Providers,
        apply: ApplyEvent,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._providers = providers
        self._clock = clock
        self._apply = apply
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
            fresh = await uow.webhooks.record(record)
            await uow.commit()
        return Received(record.id if fresh else None, duplicate=not fresh)

    async def process(self, record_id: str) -> None:
        """Apply one stored event now; a failure is recorded for :meth:`process_due`."""
        try:
            async with self._storage() as uow:
                record = await uow.webhooks.get(record_id)
            if record is not None and record.processed_at is None:
                await self._process(record)
        except Exception:  # the event stays unprocessed; the worker takes it up again
            log.exception("webhook %s: processing could not be recorded", record_id)

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
        try:
            event = self._provider(record.provider).decode_webhook(record.body)
            order_id = await self._apply(record.provider, event)
        except Exception as exc:
            await self._failed(record, exc)
            return False
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
