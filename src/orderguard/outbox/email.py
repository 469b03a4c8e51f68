"""Shopper email over SMTP: one message per event a shopper should hear about.

``ORDERGUARD_SMTP_URL`` switches it on: ``smtp://user:pass@host:587?starttls=true`` (or
``smtps://`` for TLS from the first byte; ``?starttls=false`` for none). Each message
carries the order's status page link, is written in the order's locale, and has the event
id in its ``Message-ID`` so a mail system can drop a re-sent copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from orderguard.domain.delivery import EMAIL_SINK, EMAILED_EVENTS
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.domain.order import Order
from orderguard.outbox.sinks import DeliveryFailed, SinkMisconfigured
from orderguard.outbox.templates import EmailTemplates


class BadSmtpUrl(SinkMisconfigured):
    """ORDERGUARD_SMTP_URL is not ``smtp://[user:pass@]host[:port][?starttls=true]``."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to send mail."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    #: TLS from the first byte (``smtps://``, usually port 465).
    tls: bool = False
    #: Upgrade with STARTTLS (required when true).
    starttls: bool = False

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Read ``smtp://user:pass@host:587?starttls=true`` (or ``smtps://...``)."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise BadSmtpUrl(f"SMTP URL must look like smtp://user:pass@host:587, not {url!r}")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps" or query.get("tls") in {"1", "true", "yes"}
        try:
            port = parts.port or (465 if tls else 587)
        except ValueError as exc:
            raise BadSmtpUrl(f"SMTP URL has a bad port: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            starttls=query.get("starttls") in {"1", "true", "yes"},
        )


class EmailSink:
    """Emails the shopper about their order."""

    name = EMAIL_SINK
    events: frozenset[EventType] | None = EMAILED_EVENTS
    needs_order = True

    def __init__(
        self,
        server: SmtpServer,
        *,
        sender: str,
        status_link: Callable[[Order], str],
        templates: EmailTemplates,
        timeout_s: float,
    ) -> None:
        self.server, self.sender, self.status_link = server, sender, status_link
        self.templates, self.timeout_s = templates, timeout_s

    def message(self, event: OutboxEvent, order: Order) -> EmailMessage:
        """The message for ``event``, addressed to the order's shopper."""
        link = self.status_link(order)
        action = order.attempts[-1].redirect_url if order.attempts else None
        rendered = self.templates.render(
            event.type,
            order.locale,
            {
                "order_id": order.id,
                "name": order.customer.name,
                "amount": order.total.format(),
                "merchant_reference": order.merchant_reference,
                "status_url": link,
                "action_url": action if event.type is EventType.ACTION_REQUIRED else None,
            },
        )
        message = EmailMessage()
        message["From"], message["To"] = self.sender, order.customer.email
        message["Subject"] = rendered.subject
        message["Message-ID"] = f"<{event.id}@orderguard>"
        message["X-Orderguard-Event-Id"] = event.id
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        message["Content-Language"] = order.locale
        return message

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        if order is None:
            raise DeliveryFailed(f"order {event.order_id} of event {event.id} not found")
        s = self.server
        try:
            await aiosmtplib.send(
                self.message(event, order),
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.tls,
                start_tls=s.starttls,
                timeout=self.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP {s.host}:{s.port} refused or failed: {exc}") from exc

    async def aclose(self) -> None:
        """Each message uses its own SMTP connection; nothing stays open."""
