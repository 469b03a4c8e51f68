"""Sending a wallet sandbox's notifications through the delivery faults of its profile:
dropped, duplicated (the same notification twice), delayed, or held back and sent after
the next one (reordered). Each copy runs the wallet's own retry schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from orderguard.providers.wallet_faults import FaultInjector

#: How long a held-back (reordered) notification waits for a successor before going out.
REORDER_FLUSH_S = 2.0
#: A held-back notification goes out this long after its successor.
AFTER_SUCCESSOR_S = 0.1

#: Sends one copy of a notification (attempts and retries included).
Send = Callable[[], Coroutine[Any, Any, None]]


class Courier:
    """Starts each notification's sending on a task of its own, faults applied."""

    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector
        self._tasks: set[asyncio.Task[None]] = set()
        #: The held-back notification: its name, how to send it, how many copies.
        self._held: tuple[str, Send, int] | None = None

    def dispatch(self, ref: str, send: Send) -> list[str]:
        """Send the notification named ``ref``; the delivery faults it met (the ledger
        shows them)."""
        decided = self._injector.delivery(ref)
        if decided.drop:
            return ["dropped"]
        met = ["duplicated"] if decided.duplicate else []
        delay_s = decided.delay_ms / 1000
        if decided.delay_ms:
            met.append(f"delayed {decided.delay_ms}ms")
        if decided.reorder and self._held is None:
            self._injector.record("notify_reorder", ref)
            self._held = (ref, send, 1 + decided.duplicate)
            self._spawn(self._flush(self._held, REORDER_FLUSH_S))
            return [*met, "reordered"]
        for _ in range(1 + decided.duplicate):
            self._spawn(self._later(send, delay_s))
        if self._held is not None:
            self._spawn(self._flush(self._held, delay_s + AFTER_SUCCESSOR_S))
        return met

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _later(self, send: Send, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await send()

    async def _flush(self, held: tuple[str, Send, int], after_s: float) -> None:
        await asyncio.sleep(after_s)
        if self._held is held:
            self._held = None
            _, send, copies = held
            await asyncio.gather(*(send() for _ in range(copies)))

    async def aclose(self) -> None:
        """Stop every sending in flight."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
