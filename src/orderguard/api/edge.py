"""What every request goes through before any route, in one ASGI layer: its id, the check of
its ``Host``, and the counts of the process that answers it.

In order, as the layers this one replaced ran them (outermost first):

1. the request gets an id: a sane ``X-Request-ID`` it carries, else a new one; it is echoed
   on the answer (refusals too) and every log line and timeline entry the request causes
   carries it (:func:`~orderguard.observability.context.request_context`);
2. a request without exactly one ``Host`` header is refused (400), one whose ``Host`` is not
   a site this service answers at too (421) (:mod:`orderguard.api.doors`); neither is
   counted below;
3. the request is counted for the process that answers it
   (``orderguard_api_process_requests``), and ``POST /v1/orders`` by outcome, with its
   latency (:mod:`orderguard.observability.http`).

One layer, not four: each ASGI middleware costs a call and, for each message the answer
sends, a wrapper of ``send``; on intake, the busiest route, that was a measurable share of
the server's CPU per order (``docs/benchmarks.md``).
"""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderguard.api.doors import HostRule, host_refusal, public_hosts
from orderguard.domain.ids import new_id
from orderguard.observability.context import request_context
from orderguard.observability.http import INTAKE_PATH, count_request, observe_intake

#: An ``X-Request-ID`` kept as the request's id; anything else gets a new one.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ID_HEADER = b"x-request-id"
_REPLAYED = (b"idempotent-replayed", b"true")


class Edge:
    """The request id, the ``Host`` check and the request counts, around ``app``.

    ``rule`` says which ``Host`` names are accepted (the main app's public URL, or
    :func:`~orderguard.api.doors.metrics_hosts` for the metrics app); ``counted`` counts the
    requests this process answers and intake's outcomes (the main app only).
    """

    def __init__(self, app: ASGIApp, *, rule: HostRule = public_hosts, counted: bool = True):
        self.app = app
        self.rule = rule
        self.counted = counted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == _ID_HEADER:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if REQUEST_ID.match(incoming) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        tag = (_ID_HEADER, request_id.encode())
        intake = (
            self.counted
            and kind == "http"
            and scope["path"] == INTAKE_PATH
            and scope["method"] == "POST"
        )
        answer = [500, False]  # intake's status, and whether it was replayed

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if intake:
                    answer[0] = message["status"]
                    answer[1] = _REPLAYED in headers
                headers.append(tag)
            await send(message)

        with request_context(request_id):  # on every log line and timeline entry it causes
            refusal = host_refusal(scope, self.rule)
            if refusal is not None:
                await refusal.response()(scope, receive, send_tagged)
                return
            if self.counted and kind == "http":
                count_request()
            if not intake:
                await self.app(scope, receive, send_tagged)
                return
            started = time.perf_counter()
            try:
                await self.app(scope, receive, send_tagged)
            finally:
                observe_intake(int(answer[0]), bool(answer[1]), time.perf_counter() - started)
