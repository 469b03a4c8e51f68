"""Housekeeping that never touches orders: pruning expired idempotency records (retention
of the outbox and webhook bodies is :mod:`orderguard.services.retention`)."""

from __future__ import annotations

from datetime import timedelta

from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import UnitOfWorkFactory


async def prune_idempotency_records(
    storage: UnitOfWorkFactory, *, ttl: timedelta, clock: Clock = system_clock
) -> int:
    """Delete idempotency records older than ``ttl`` (orders stay); return how many."""
    if ttl < timedelta(hours=24):
        raise ValueError("idempotency records are kept at least 24 hours (G2)")
    async with storage() as uow:
        pruned = await uow.idempotency.prune(clock() - ttl)
        await uow.commit()
    return pruned


async def count_idempotency_records(
    storage: UnitOfWorkFactory, *, ttl: timedelta, clock: Clock = system_clock
) -> int:
    """How many records :func:`prune_idempotency_records` would delete now."""
    async with storage.reader() as uow:
        return await uow.idempotency.prunable(clock() - ttl)
