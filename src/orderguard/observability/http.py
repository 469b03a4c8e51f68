"""Intake requests counted and timed by outcome, and every request counted by the API
process that answered it (ASGI middlewares)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderguard.observability.metrics import (
    API_PROCESS_REQUESTS,
    INTAKE_LATENCY,
    INTAKE_REQUESTS,
)

#: The route counted as intake.
INTAKE_PATH = "/v1/orders"


def intake_outcome(status: int, *, replayed: bool) -> str:
    """The ``outcome`` label of an intake answer."""
    if replayed and status < 300:
        return "replayed"
    if status < 300:
        return "created"
    if status == 409:
        return "conflict"
    if status in {401, 403}:
        return "unauthorized"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    return "invalid"


class IntakeMetricsMiddleware:
    """Counts ``POST /v1/orders`` by outcome, with its latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != INTAKE_PATH:
            await self.app(scope, receive, send)
            return
        started, answer = time.perf_counter(), {"status": 500, "replayed": False}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = dict(message.get("headers", []))
                answer["replayed"] = headers.get(b"idempotent-replayed", b"") == b"true"
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            outcome = intake_outcome(int(answer["status"]), replayed=bool(answer["replayed"]))
            INTAKE_REQUESTS.labels(outcome).inc()
            INTAKE_LATENCY.labels(outcome).observe(time.perf_counter() - started)


class ProcessRequestsMiddleware:
    """Counts every HTTP request this process answers (``orderguard_api_process_requests``:
    how ``serve --processes`` shares requests among its processes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            API_PROCESS_REQUESTS.inc()
        await self.app(scope, receive, send)
