"""The sinks the settings switch on, and the relay built from them.

Nothing is configured by default: no SMTP URL, no NATS URL and no merchant endpoint mean
no sink, and the relay does nothing at all. Events stay in the outbox (they are part of
the record) but count as lag nowhere: lag is measured per configured sink, and a sink
switched on later catches up on ``ORDERGUARD_OUTBOX_BACKFILL_HOURS`` of events only.
"""

from __future__ import annotations

from datetime import timedelta

import httpx

from orderguard.config import Settings
from orderguard.outbox.egress import Resolver, system_resolver
from orderguard.outbox.email import EmailSink, SmtpServer
from orderguard.outbox.merchant_webhooks import WebhookSink
from orderguard.outbox.relay import Relay, RelayPolicy
from orderguard.outbox.sinks import Sink
from orderguard.outbox.stream import StreamSink
from orderguard.outbox.templates import EmailTemplates
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWorkFactory


def policy_from(settings: Settings) -> RelayPolicy:
    """The relay's retry, lease and catch-up policy from ``settings``."""
    return RelayPolicy(
        max_attempts=settings.outbox_max_attempts,
        backoff_base_s=settings.outbox_backoff_s,
        backoff_cap_s=settings.outbox_backoff_max_s,
        lease_s=settings.outbox_lease_s,
        backfill=timedelta(hours=settings.outbox_backfill_hours),
    )


class ConfiguredSinks:
    """Email and the stream from the settings; one webhook sink per active endpoint."""

    def __init__(
        self,
        settings: Settings,
        storage: UnitOfWorkFactory,
        *,
        clock: Clock,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.settings, self.storage, self._clock = settings, storage, clock
        self._resolver = resolver
        self._fixed: list[Sink] = []
        if settings.smtp_url:
            self._fixed.append(
                EmailSink(
                    SmtpServer.parse(settings.smtp_url),
                    sender=settings.smtp_from,
                    public_url=settings.public_url,
                    templates=EmailTemplates(settings.email_template_dir),
                    timeout_s=settings.outbox_timeout_s,
                )
            )
        if settings.nats_url:
            self._fixed.append(
                StreamSink(
                    settings.nats_url,
                    stream=settings.nats_stream,
                    prefix=settings.nats_subject_prefix,
                    timeout_s=settings.outbox_timeout_s,
                )
            )
        self._client: httpx.AsyncClient | None = None

    async def current(self) -> list[Sink]:
        async with self.storage.reader() as uow:
            active = await uow.endpoints.active()
        if active and self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.outbox_timeout_s)
        hooks: list[Sink] = [
            WebhookSink(
                e,
                storage=self.storage,
                client=self._client,
                clock=self._clock,
                resolver=self._resolver,
            )
            for e in active
            if self._client is not None
        ]
        return [*self._fixed, *hooks]

    async def aclose(self) -> None:
        for sink in self._fixed:
            await sink.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def build_relay(
    settings: Settings,
    storage: UnitOfWorkFactory,
    *,
    clock: Clock = system_clock,
    resolver: Resolver = system_resolver,
) -> Relay:
    """The relay on ``storage`` with the sinks ``settings`` switch on (``resolver`` finds
    merchant endpoints' addresses; tests inject their own)."""
    sinks = ConfiguredSinks(settings, storage, clock=clock, resolver=resolver)
    return Relay(storage, sinks, policy=policy_from(settings), clock=clock)
