"""One reconciliation run: recognise the files, read them, export the orders and attempts
their period and references need (:func:`~.export.export_scope`), match the lines; then,
only if a charge line names nothing, export the payments it can be matched to by amount
(:func:`~.export.export_candidates`); match the rest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from orderguard.reconcile.engine import Engine, EngineOptions, Outcome
from orderguard.reconcile.export import export_candidates, export_scope
from orderguard.reconcile.formats import OWN, Formats
from orderguard.reconcile.mapping import load_mapping
from orderguard.reconcile.sources import LineError, SourceError, open_source
from orderguard.storage.ports import UnitOfWorkFactory

#: Reports up to this size (bytes, all files together: about 50,000 lines of a provider's
#: payout report) are matched on one thread: DuckDB's parallel operators cost more than they save
#: on so few rows (a day's 16,109 lines on 10 M orders: 0.206 s on one thread against 0.217
#: on two; a week's 112,488 lines: 1.07 s against 1.06; docs/data-growth.md).
SMALL_REPORTS = 8 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """What to reconcile."""

    files: list[Path]
    format: str = "auto"
    mapping: Path | None = None
    options: EngineOptions = field(default_factory=EngineOptions)
    #: The formats the files may be in: the composition's table (the registered providers'
    #: and reconcile's own), else reconcile's own alone.
    formats: Formats = OWN


async def reconcile(
    storage: UnitOfWorkFactory, request: Request, workdir: Path
) -> tuple[Engine, Outcome]:
    """Match ``request``'s files against the orders in ``storage``; the caller closes the
    engine.

    A file that cannot be recognised is reported as a line error and the others go on.
    Raises :class:`~.mapping.MappingError` for a bad mapping file.
    """
    mapping = load_mapping(request.mapping) if request.mapping else None
    sources, unreadable = [], []
    for path in request.files:
        try:
            sources.append(
                open_source(path, wanted=request.format, mapping=mapping, formats=request.formats)
            )
        except SourceError as exc:
            unreadable.append(LineError(str(path), 0, str(exc)))
    orders_csv, attempts_csv = workdir / "orders.csv", workdir / "attempts.csv"
    provider = request.options.provider
    options = request.options
    if options.threads is None and sum(s.path.stat().st_size for s in sources) <= SMALL_REPORTS:
        options = replace(options, threads=1)
    engine = Engine(workdir, options)
    try:
        for source in sources:
            engine.load_report(source)
        exported = await export_scope(storage, orders_csv, attempts_csv, engine.scope())
        engine.load_orders(orders_csv, attempts_csv)
        engine.match_lines()
        read = [exported]
        if not exported.complete and (wanted := engine.candidates()) is not None:
            more = workdir / "candidate_orders.csv", workdir / "candidate_attempts.csv"
            read.append(await export_candidates(storage, *more, wanted))
            engine.add_candidates(*more)
        outcome = engine.finish()
    except BaseException:
        engine.close()
        raise
    outcome.errors[:0] = unreadable
    outcome.extra["unopened"] = [error.file for error in unreadable]
    outcome.extra["provider"] = provider or (sources[0].layout.provider if sources else "unknown")
    outcome.extra["formats"] = sorted({s.layout.name for s in sources})
    outcome.extra["digest"] = digest(request.files)
    outcome.extra["read"] = {
        "orders": sum(r.orders for r in read),
        "attempts": sum(r.attempts for r in read),
        "candidates": len(read) > 1,
    }
    return engine, outcome


def digest(files: list[Path]) -> str:
    """SHA-256 over the files' contents, in a fixed order: the same files, the same run."""
    parts = []
    for path in files:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
        parts.append(sha.hexdigest())
    return hashlib.sha256("".join(sorted(parts)).encode()).hexdigest()
