"""The relay as one of the worker's duties: built on first use, on whatever storage the
worker is wired to (SQL or in memory)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from orderguard.config import ConfigError
from orderguard.outbox.relay import Relay, RelayReport

if TYPE_CHECKING:
    from orderguard.bootstrap import Container

log = logging.getLogger("orderguard.outbox")


class RelayDuty:
    """Runs relay rounds for one worker."""

    def __init__(self, container: Container, owner: str) -> None:
        self.container, self.owner = container, owner
        self._relay: Relay | None = None
        self._broken: str | None = None

    async def run(self, stop: asyncio.Event | None = None) -> RelayReport | None:
        """One round of the relay (``None`` when its configuration is broken: then events
        wait in the outbox)."""
        if self._broken is not None:
            return None
        if self._relay is None:
            from orderguard.outbox.configured import build_relay  # sinks' clients load lazily

            try:
                self._relay = build_relay(
                    self.container.settings, self.container.storage, clock=self.container.clock
                )
            except ConfigError as exc:
                self._broken = str(exc)
                log.error("outbox relay not started, events wait in the outbox: %s", exc)
                return None
        return await self._relay.run_once(owner=self.owner, stop=stop)

    async def aclose(self) -> None:
        """Close the sinks' connections (reopened by the next round if there is one)."""
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.aclose()
