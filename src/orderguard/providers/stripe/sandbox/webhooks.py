"""Signed webhook delivery with retries, and the webhook faults: drop, duplicate, delay, reorder."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from orderguard.providers.stripe.sandbox import recording
from orderguard.providers.stripe.sandbox.faults import FaultDice, FaultProfile
from orderguard.providers.stripe.sandbox.ledger import Ledger, Obj
from orderguard.providers.stripe.signing import SIGNATURE_HEADER, signature_header

#: Delivery attempts per webhook copy before it is marked ``failed``.
MAX_ATTEMPTS = 5
#: First retry delay in seconds; doubles per attempt.
RETRY_BASE_S = 0.5
#: How long a held-back (reordered) event waits for a successor before going out anyway.
REORDER_FLUSH_S = 2.0
#: Deliveries in flight at once (Stripe too spreads its webhooks over a few connections).
#: Unbounded, a burst of charges queued hundreds of POSTs in the HTTP client's pool, whose
#: bookkeeping grows with the queue: the sandbox (a thread of ``serve`` by default) spent
#: more CPU queueing them than charging.
MAX_IN_FLIGHT = 8


def signed_delivery(evt: Obj, secret: str, *, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would POST for ``evt``."""
    body = json.dumps({k: v for k, v in evt.items() if k != "_delivery"}).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: signature_header(body, secret, timestamp=timestamp),
    }
    return body, headers


class WebhookDispatcher:
    """POSTs stored events to ``url`` in the background, injecting webhook faults."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        url: str | None,
        secret: str,
        dice: FaultDice,
        profile: Callable[[], FaultProfile],
    ) -> None:
        self._ledger, self._url, self._secret = ledger, url, secret
        self._dice, self._profile = dice, profile
        self._queue: asyncio.Queue[Obj] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: Obj | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    def start(self) -> None:
        """Start delivering, beginning with events a previous run left pending."""
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
        )
        self._client = httpx.AsyncClient(timeout=5.0, limits=limits)
        self._spawn(self._run())
        self.enqueue(self._ledger.events("pending"))

    async def stop(self) -> None:
        """Cancel every delivery in flight and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def enqueue(self, events: list[Obj]) -> None:
        """Queue committed events for delivery."""
        for evt in events:
            self._queue.put_nowait(evt)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while True:
            evt = await self._queue.get()
            if self._url is not None:
                self._dispatch(evt)

    def _dispatch(self, evt: Obj) -> None:
        faults = self._dice.webhook(self._profile())
        if faults.drop:
            self._ledger.record_fault("webhook_dropped", evt["id"])
            self._ledger.set_event_state(evt["id"], "dropped")
            return
        copies = 2 if faults.duplicate else 1
        if faults.duplicate:
            self._ledger.record_fault("webhook_duplicated", evt["id"])
        if faults.delay_ms:
            self._ledger.record_fault("webhook_delayed", f"{evt['id']} {faults.delay_ms}ms")
        if faults.reorder and self._held is None:
            self._ledger.record_fault("webhook_reordered", evt["id"])
            self._held = evt
            self._spawn(self._flush_held(evt, REORDER_FLUSH_S))
            return
        for _ in range(copies):
            self._spawn(self._deliver(evt, faults.delay_ms / 1000))
        if self._held is not None:
            self._spawn(self._flush_held(self._held, faults.delay_ms / 1000 + 0.1))

    async def _flush_held(self, evt: Obj, after_s: float) -> None:
        await asyncio.sleep(after_s)
        if self._held is evt:
            self._held = None
            await self._deliver(evt, 0.0)

    async def _deliver(self, evt: Obj, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if await self._post(evt):
                self._ledger.set_event_state(evt["id"], "delivered", attempts=attempt)
                return
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 1))
        self._ledger.set_event_state(evt["id"], "failed", attempts=MAX_ATTEMPTS)

    async def _post(self, evt: Obj) -> bool:
        assert self._client is not None and self._url is not None
        async with self._in_flight:  # signed when sent: the timestamp is the sending time
            body, headers = signed_delivery(evt, self._secret, timestamp=int(time.time()))
            recording.record_webhook(self._url, body)  # test-only, off unless switched on
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
            except httpx.HTTPError:
                return False
        return response.is_success
