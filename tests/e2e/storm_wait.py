"""Waiting for a storm's orders to come to rest (the chaos tests' last step)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from orderguard.demo import audit, run
from orderguard.storage.connect import connect


async def settled(url: str, prefix: str, *, timeout_s: float) -> audit.Snapshot:
    """Wait until every order of the run (references starting with ``prefix``) is settled
    or flagged, at most ``timeout_s``; the last snapshot either way (the audit then says
    what did not settle)."""
    db = await connect(url, pool_size=2)
    try:
        deadline = time.monotonic() + timeout_s
        expiry = timedelta(seconds=run.ACTION_EXPIRY_S + 20)
        while True:
            snapshot = await audit.snapshot(db, prefix)
            if not snapshot.unresolved(datetime.now(UTC), action_expiry=expiry):
                return snapshot
            if time.monotonic() > deadline:
                return snapshot
            await asyncio.sleep(0.5)
    finally:
        await db.close()
