"""Merchant webhooks: each event POSTed as JSON, signed per Standard Webhooks.

Headers ``webhook-id`` (the event id, stable across retries), ``webhook-timestamp`` (when
this try was sent) and ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per secret
valid now, space-separated, so a receiver verifies during a secret rotation with either
its old or its new secret. A 2xx answer is a delivery; anything else, or no answer within
the timeout, is a failure tried again later.
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
from orderguard.outbox.sinks import DeliveryFailed, event_json
from orderguard.services.clock import Clock
from orderguard.storage.endpoints import EndpointStore

#: Longest part of a failed answer's body kept in the error.
_BODY_EXCERPT = 200


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
        store: EndpointStore,
        client: httpx.AsyncClient,
        clock: Clock,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.sink
        self._store, self._client, self._clock = store, client, clock

    async def deliver(self, event: OutboxEvent, order: Order | None) -> None:
        now = self._clock()
        valid = await self._store.secrets(self.endpoint.id, at=now)
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
        try:
            answer = await self._client.post(self.endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"no answer from {self.endpoint.url} in time ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"could not reach {self.endpoint.url}: {exc!r}") from exc
        if not 200 <= answer.status_code < 300:
            excerpt = answer.text[:_BODY_EXCERPT]
            raise DeliveryFailed(f"{self.endpoint.url} answered {answer.status_code}: {excerpt}")

    async def aclose(self) -> None:
        """The HTTP client is shared by every endpoint and closed by the relay's sinks."""
