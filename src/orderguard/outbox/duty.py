"""The relay as one of the worker's duties: built on first use, on SQL storage only."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from orderguard.outbox.relay import Relay, RelayReport
from orderguard.storage.unit_of_work import SqlStorage

if TYPE_CHECKING:
    from orderguard.bootstrap import Container


class RelayDuty:
    """Runs relay rounds for one worker; does nothing on in-memory storage."""

    def __init__(self, container: Container, owner: str) -> None:
        self.container, self.owner = container, owner
        self._relay: Relay | None = None

    async def run(self, stop: asyncio.Event | None = None) -> RelayReport | None:
        """One round of the relay (``None`` when the storage keeps no outbox bookkeeping)."""
        storage = self.container.storage
        if not isinstance(storage, SqlStorage):
            return None
        if self._relay is None:
            from orderguard.outbox.configured import build_relay  # sinks' clients load lazily

            self._relay = build_relay(self.container.settings, storage, clock=self.container.clock)
        return await self._relay.run_once(owner=self.owner, stop=stop)

    async def aclose(self) -> None:
        """Close the sinks' connections (reopened by the next round if there is one)."""
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.aclose()
