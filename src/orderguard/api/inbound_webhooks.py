"""The webhook inbox over HTTP: providers post here; the signature is the authentication.

The event is stored before the answer and applied after it (a background task), so the
provider is answered fast (an event that changes nothing is stored processed and has no
background task); what fails there is retried by the worker from the inbox. The
answer to an accepted event is the provider's own (its profile's reply): JSON
``{"received": true, "duplicate": ...}`` for card providers, or e.g. a plain ``success``.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import Response

from orderguard.api.problems import PROBLEM_JSON, ProblemError
from orderguard.api.render import Payments
from orderguard.domain.errors import InvalidWebhookSignature, UnknownWebhookProvider
from orderguard.services.inbound_webhooks import WebhookInbox

router = APIRouter(prefix="/v1", tags=["webhooks"])
#: The largest webhook body accepted, in bytes.
MAX_WEBHOOK_BYTES = 256 * 1024


class WebhookAck(BaseModel):
    """The event was stored (or had been already); the provider may stop retrying.

    The JSON reply; a provider that expects another (a plain-text ``success``) gets its own.
    """

    received: bool
    duplicate: bool


def _problem(description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": ref}}}


class WebhookDesk(Protocol):
    """What the webhook route calls: the inbox, and the providers whose replies answer
    their events (the payments' providers)."""

    @property
    def inbox(self) -> WebhookInbox: ...

    @property
    def payments(self) -> Payments: ...


async def webhook_desk(request: Request) -> WebhookDesk:
    """What the webhook route calls, from the application's wiring (``async``: FastAPI
    would run a plain function in its thread pool, a thread hop per webhook)."""
    found: WebhookDesk = request.app.state.container
    return found


@router.post(
    "/webhooks/{provider}",
    response_model=WebhookAck,
    responses={
        400: _problem("The signature or its timestamp does not verify; nothing was stored"),
        404: _problem("No payment provider has this name"),
        413: _problem("Body larger than 256 KiB"),
        503: _problem("The database is unavailable; the provider should retry"),
    },
)
async def receive_webhook(
    provider: str, request: Request, desk: Annotated[WebhookDesk, Depends(webhook_desk)]
) -> Response:
    """Verify and store a provider's event; it is applied right after this answer."""
    body = await _raw_body(request)
    try:
        received = await desk.inbox.receive(provider, body, dict(request.headers))
    except UnknownWebhookProvider as exc:
        raise ProblemError(404, "unknown-provider", "Unknown provider", exc.detail) from None
    except InvalidWebhookSignature as exc:
        raise ProblemError(
            400, "invalid-webhook-signature", "Invalid webhook signature", exc.detail
        ) from None
    reply = desk.payments.providers.named(provider).profile.reply(duplicate=received.duplicate)
    later = None
    if received.pending is not None:
        later = BackgroundTask(desk.inbox.process, received.pending.id, received.pending)
    return Response(reply.body, reply.status, media_type=reply.media_type, background=later)


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> ProblemError:
    return ProblemError(
        413,
        "payload-too-large",
        "Payload too large",
        f"A webhook body may be at most {MAX_WEBHOOK_BYTES // 1024} KiB.",
    )
