"""``--apply``: record the run and its exceptions, flag orders, hand orphans to the sweep,
and close the exceptions of earlier runs that this one explains.

The run is recorded once per set of files (by their contents' digest) and each exception
once however many runs report it (a key from its category, reference, order and amounts),
so applying the same file twice changes nothing the second time. Each exception is
recorded with its order's flag, or with its orphan's sweep finding, in one transaction.
An orphan charge becomes a ``reported`` sweep finding: the sweep's next run asks the
provider about the charge and resolves it like an orphan it found itself (G4). An earlier
run's exception that this run explains (:meth:`~.engine.Engine.explained`: the missing
order's charge arrived, the orphan found its order, the duplicate was refunded) is closed,
with this run as the one that resolved it; the console and the alert read the open ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from orderguard.domain import ids
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.reconcile import categories as c
from orderguard.reconcile.engine import Engine, Outcome, Result
from orderguard.reconcile.export import paid_refs
from orderguard.reconcile.outcome import Unexplained
from orderguard.reconcile.report import money
from orderguard.services.clock import Clock, system_clock
from orderguard.services.sweep import PENDING, REPORTED
from orderguard.storage.ports import (
    ExceptionRecord,
    RunRecord,
    SweepFinding,
    UnitOfWork,
    UnitOfWorkFactory,
)

#: The review reason each flagging category raises on its order.
FLAG_FOR: dict[str, FlagReason] = {
    c.AMOUNT_MISMATCH: FlagReason.RECONCILIATION_AMOUNT_MISMATCH,
    c.CURRENCY_MISMATCH: FlagReason.RECONCILIATION_CURRENCY_MISMATCH,
    c.MISSING_AT_PROVIDER: FlagReason.RECONCILIATION_MISSING_AT_PROVIDER,
    c.DUPLICATE: FlagReason.RECONCILIATION_DUPLICATE,
}


@dataclass
class Applied:
    """What ``--apply`` changed."""

    run_id: str
    #: False when the same files were applied before: then nothing else changed.
    new_run: bool
    recorded: int = 0
    flagged: int = 0
    handed_to_sweep: int = 0
    #: Exceptions earlier runs recorded that this one explains, now closed by it.
    resolved: int = 0


async def apply(
    storage: UnitOfWorkFactory, engine: Engine, outcome: Outcome, *, clock: Clock = system_clock
) -> Applied:
    """Record ``outcome`` and act on its exceptions (see the module's docstring)."""
    now = clock()
    provider = str(outcome.extra["provider"])
    run = RunRecord(
        id=ids.new_id("rec"),
        digest=str(outcome.extra["digest"]),
        files=orjson.dumps(outcome.files).decode(),
        provider=provider,
        period_from=outcome.period_from,
        period_to=outcome.period_to,
        summary=orjson.dumps({"counts": outcome.counts, "errors": len(outcome.errors)}).decode(),
        applied_at=now,
    )
    async with storage() as uow:
        new_run = await uow.reconciliations.record_run(run)
        await uow.commit()
    applied = Applied(run.id, new_run)
    if not new_run:
        return applied
    for batch in engine.results():
        for result in batch:
            async with storage() as uow:
                if await _act(uow, run.id, provider, result, now, applied):
                    await uow.commit()
    async with storage.reader() as uow:
        earlier = await uow.reconciliations.open_exceptions(provider=provider, other_than=run.id)
    # Each read in its own unit of work (the lookups open theirs), then one transaction that
    # closes those still open: an exception another run closed meanwhile is left as it is.
    orphans = {e.provider_ref for e in earlier if e.category == c.MISSING_IN_ORDERS}
    explained = engine.explained(
        [Unexplained(e.id, e.category, e.order_id, e.provider_ref, e.amount) for e in earlier],
        paid=await paid_refs(storage, {ref for ref in orphans if ref}),
    )
    async with storage() as uow:
        applied.resolved = await uow.reconciliations.resolve(explained, run_id=run.id, at=now)
        await uow.commit()
    return applied


async def _act(
    uow: UnitOfWork, run_id: str, provider: str, result: Result, now: datetime, applied: Applied
) -> bool:
    """Record one exception and what it causes; ``False`` when it was recorded before."""
    if not await uow.reconciliations.record_exception(_record(run_id, provider, result, now)):
        return False
    applied.recorded += 1
    if result.category in c.FLAGGING and result.order_id:
        order = await uow.orders.get(result.order_id, for_update=True)
        if order is not None:
            order.flag(
                FLAG_FOR[result.category], _detail(result), cause=Cause.RECONCILIATION, at=now
            )
            await uow.orders.save(order)
            applied.flagged += 1
    if result.category == c.MISSING_IN_ORDERS and result.provider_ref and result.currency:
        finding = SweepFinding(
            id=ids.new_id("swf"),
            provider=provider,
            provider_ref=result.provider_ref,
            kind=REPORTED,
            amount=result.amount or 0,
            currency=result.currency,
            resolution=PENDING,
            found_at=now,
            order_id=None,
        )
        if await uow.findings.record(finding):
            applied.handed_to_sweep += 1
    return True


def _detail(result: Result) -> str:
    """What the report said, after the category (the flag's text adds "reconciliation: ")."""
    expected = money(result.expected_amount, result.expected_currency)
    if result.file is None:
        return f"{result.category}: paid {expected}, not in the report"
    said = money(result.amount, result.currency)
    return f"{result.category} ({result.place}): report {said}, order {expected}"


def _record(run_id: str, provider: str, result: Result, now: datetime) -> ExceptionRecord:
    key = "|".join(
        str(part)
        for part in (
            result.category,
            provider,
            result.provider_ref or "",
            result.order_id or "",
            result.amount,
            result.currency,
            result.file and result.line if result.category == c.DUPLICATE else "",
        )
    )
    return ExceptionRecord(
        id=ids.new_id("rex"),
        run_id=run_id,
        dedupe_key=key,
        category=result.category,
        order_id=result.order_id,
        provider_ref=result.provider_ref,
        amount=result.amount,
        currency=result.currency,
        expected_amount=result.expected_amount,
        expected_currency=result.expected_currency,
        file=result.file,
        line=result.line,
        recorded_at=now,
    )
