"""Merchant webhooks: each event POSTed as JSON, signed per Standard Webhooks.

Headers ``webhook-id`` (the event id, stable across retries), ``webhook-timestamp`` (when
this try was sent) and ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per secret
valid now, space-separated, so a receiver verifies during a secret rotation with either
its old or its new secret. A 2xx answer is a delivery; anything else, or no answer within
the timeout, is a failure tried again later; redirects are not followed.

Before each try the endpoint's host is resolved and checked (``outbox.egress``) and the
request goes to the checked address. A failed answer's first bytes (never more than a few
hundred are read) are kept in the error for public endpoints only: the answer of a private
one (``--allow-private``) may be a service of the shop's own network, so only its status
code is kept.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from orderguard.domain.delivery import WebhookEndpoint, WebhookSecret
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.domain.order import Order
from orderguard.outbox.egress import (
    EgressRefused,
    Resolver,
    checked_address,
    pinned,
    system_resolver,
    target_of,
)
from orderguard.outbox.sinks import DeliveryFailed, event_json
from orderguard.services.clock import Clock
from orderguard.storage.ports import UnitOfWorkFactory

#: Longest part of a failed answer's body kept in the error (characters).
_BODY_EXCERPT = 200
#: Most bytes of a failed answer's body read (enough for the excerpt in any UTF-8); the
#: rest is never read: an endpoint cannot make the relay hold a large answer.
_BODY_READ = 4 * _BODY_EXCERPT


async def _excerpt(answer: httpx.Response) -> str:
    """The start of ``answer``'s body, reading no more than :data:`_BODY_READ` bytes."""
    read = bytearray()
    async for chunk in answer.aiter_bytes():
        read += chunk
        if len(read) >= _BODY_READ:
            break
    return bytes(read[:_BODY_READ]).decode("utf-8", "replace")[:_BODY_EXCERPT]


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form (``whsec_`` + 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_header(
    secrets_: Sequence[WebhookSecret], *, msg_id: str, timestamp: float, body: str
) -> str:
    """``webhook-signature``: a ``v1`` signature per secret, space-separated."""
    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(
        Webhook(s.secret).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets_
    )


class WebhookSink:
    """POSTs events to one merchant endpoint."""

    events: frozenset[EventType] | None = None
    needs_order = False

    def __init__(
        self,
        endpoint: WebhookEndpoint,
        *,
        storage: UnitOfWorkFactory,
        client: httpx.AsyncClient,
        clock: Clock,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.sink
        self._storage, self._client, self._clock = storage, client, clock
        self._resolver = resolver

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        now = self._clock()
        async with self._storage.reader() as uow:
            valid = await uow.endpoints.secrets(self.endpoint.id, at=now)
        if not valid:
            raise DeliveryFailed(f"endpoint {self.endpoint.id} has no valid signing secret")
        body = event_json(event).decode()
        stamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature_header(
                valid, msg_id=event.id, timestamp=stamp, body=body
            ),
        }
        status, excerpt = await self._post(body, headers)
        if not 200 <= status < 300:
            raise DeliveryFailed(self._failure(status, excerpt))

    async def _post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        """POST to the endpoint's host at an address checked just now: the answer's status
        and, for a failure at a public endpoint, the start of its body (at most
        :data:`_BODY_READ` bytes are read, however much the endpoint sends)."""
        url = self.endpoint.url
        try:
            target = target_of(url)
            address = await checked_address(
                target, resolver=self._resolver, allow_private=self.endpoint.allow_private
            )
        except EgressRefused as exc:
            raise DeliveryFailed(f"refused to send to {url}: {exc}") from exc
        request = pinned(target, address)
        try:
            async with self._client.stream(
                "POST",
                request.url,
                content=body,
                headers={**headers, **request.headers},
                extensions=request.extensions,
            ) as answer:
                failed = not 200 <= answer.status_code < 300
                keep = failed and not self.endpoint.allow_private
                return answer.status_code, await _excerpt(answer) if keep else ""
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"no answer from {url} in time ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"could not reach {url}: {exc!r}") from exc

    def _failure(self, status: int, excerpt: str) -> str:
        """The error of a non-2xx answer: status, and the body's start if it is public."""
        said = f"{self.endpoint.url} answered {status}"
        if self.endpoint.allow_private:
            return f"{said} (body not kept: private endpoint)"
        return f"{said}: {excerpt}"

    async def aclose(self) -> None:
        """The HTTP client is shared by every endpoint and closed by the relay's sinks."""
