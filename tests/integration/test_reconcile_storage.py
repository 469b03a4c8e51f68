"""A reported charge's finding is resolved in place, on every back end (the sweep's side of
the hand-over from reconciliation)."""

from __future__ import annotations

from datetime import UTC, datetime

from orderguard.services.sweep import PENDING, REPORTED
from orderguard.storage.ports import SweepFinding, UnitOfWorkFactory

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_a_pending_finding_is_resolved_and_only_that_one(storage: UnitOfWorkFactory) -> None:
    reported = SweepFinding("swf_1", "stripe", "pi_1", REPORTED, 2500, "EUR", PENDING, T0)
    other = SweepFinding("swf_2", "stripe", "pi_2", REPORTED, 900, "EUR", PENDING, T0)
    async with storage() as uow:
        await uow.findings.record(reported)
        await uow.findings.record(other)
        await uow.commit()
    async with storage() as uow:
        await uow.findings.resolve("swf_1", "swept")
        await uow.commit()
    async with storage() as uow:
        found = {f.id: f.resolution for f in await uow.findings.all()}
    assert found == {"swf_1": "swept", "swf_2": PENDING}


async def test_a_resolution_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    reported = SweepFinding("swf_1", "stripe", "pi_1", REPORTED, 2500, "EUR", PENDING, T0)
    async with storage() as uow:
        await uow.findings.record(reported)
        await uow.commit()
    async with storage() as uow:
        await uow.findings.resolve("swf_1", "swept")
    async with storage() as uow:
        assert [f.resolution for f in await uow.findings.all()] == [PENDING]
