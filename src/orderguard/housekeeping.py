"""Background duties of ``serve`` until the worker of the recovery issue takes them over:
charge orders waiting for a provider, expire abandoned authentications, prune old keys.

Each duty is safe to run in several processes at once (rows are locked and re-checked).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from orderguard.bootstrap import Container
from orderguard.providers.base import ProviderError
from orderguard.services.expiry import expire_abandoned
from orderguard.services.maintenance import prune_idempotency_records
from orderguard.services.waiting import charge_waiting
from orderguard.storage.database import StorageError

log = logging.getLogger("orderguard.housekeeping")
#: Seconds between rounds; pruning happens once an hour.
ROUND_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 3600.0


async def housekeeping_round(container: Container) -> None:
    """One round of the duties that run every few seconds."""
    settings = container.settings
    sent = await charge_waiting(container.storage, container.payments)
    expired = await expire_abandoned(
        container.storage,
        container.payments,
        container.recheck,
        after=timedelta(minutes=settings.action_expiry_minutes),
    )
    if sent or expired:
        log.info("charged %d waiting orders, cancelled %d abandoned ones", sent, expired)


async def run_forever(container: Container) -> None:
    """Run the duties until cancelled; a failing round is logged and retried."""
    last_prune = 0.0
    while True:
        try:
            await housekeeping_round(container)
            if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                await prune_idempotency_records(
                    container.storage, ttl=container.settings.idempotency_ttl
                )
                last_prune = time.monotonic()
        except (StorageError, ProviderError) as exc:
            log.warning("housekeeping round failed, will retry: %s", exc)
        await asyncio.sleep(ROUND_SECONDS)
