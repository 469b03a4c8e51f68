"""Recorded reconciliation exceptions, for the support console and for metrics."""

from __future__ import annotations

from orderguard.storage.ports import ExceptionRecord, UnitOfWorkFactory


async def latest_exceptions(
    storage: UnitOfWorkFactory,
    *,
    limit: int = 50,
    category: str | None = None,
    open_only: bool = True,
) -> list[ExceptionRecord]:
    """The newest recorded exceptions (category, order id, provider reference, amounts,
    file and line), newest first, optionally of one category: only those still open (no
    later run explained them) unless ``open_only`` is false."""
    async with storage.reader() as uow:
        return await uow.reconciliations.latest_exceptions(
            limit=limit, category=category, open_only=open_only
        )


async def exceptions_by_category(storage: UnitOfWorkFactory) -> dict[str, int]:
    """How many exceptions have been recorded, per category (for metrics)."""
    async with storage.reader() as uow:
        return await uow.reconciliations.counts_by_category()


async def open_exceptions_by_category(storage: UnitOfWorkFactory) -> dict[str, int]:
    """How many exceptions are still open (no later run explained them), per category."""
    async with storage.reader() as uow:
        return await uow.reconciliations.counts_by_category(open_only=True)


async def exception_counts(storage: UnitOfWorkFactory) -> tuple[dict[str, int], dict[str, int]]:
    """Recorded and open exceptions per category, read in one transaction (``/metrics``)."""
    async with storage.reader() as uow:
        recorded = await uow.reconciliations.counts_by_category()
        still_open = await uow.reconciliations.counts_by_category(open_only=True)
    return recorded, still_open


async def run_providers(storage: UnitOfWorkFactory, run_ids: set[str]) -> dict[str, str]:
    """The provider each applied run reconciled, by run id."""
    async with storage.reader() as uow:
        return await uow.reconciliations.providers_of(run_ids)
