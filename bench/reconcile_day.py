"""Benchmark: reconcile one day's settlement report against a database holding years of orders.

``python bench/reconcile_day.py --url postgresql://postgres@127.0.0.1/og_recon_200k`` (a
database filled by ``bench/datagen.py``; it is only read). The report is a Stripe itemized
payout reconciliation CSV of every payment of the database's last whole day (as
``bench/reconcile.py`` writes it: each line confirms its order). Interleaved rounds
(``--rounds``, median of the rounds' ratios), in this process:

- ``reconcile``: what ``orderguard reconcile`` does: recognise the report, read the orders
  and attempts its period and references need from PostgreSQL
  (:func:`orderguard.reconcile.export.export_scope`), match in DuckDB, write the exceptions;
- ``baseline``: ``bench/reconcile.py``'s plain DuckDB join (report -> attempts by reference
  -> orders, counting equal amounts) over the same report and the orders and attempts the
  scope reads, already on disk.

Target (issue 20): reconcile <= 2x the baseline. ``--full`` also times the former way once
(every order and attempt exported, then matched) for comparison; ``--days 7`` makes the
report a week's (the last seven whole days) instead of a day's.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reconcile import _baseline

HEADER = (
    "automatic_payout_id,automatic_payout_effective_at,balance_transaction_id,created_utc,"
    "available_on_utc,currency,gross,fee,net,reporting_category,description,charge_id,"
    "payment_intent_id,source_id,payment_metadata[order_id]"
).split(",")


async def write_report(storage: Any, path: Path, days: int = 1) -> tuple[datetime, int]:
    """The payments of the last ``days`` whole days before the newest order's day, as a
    Stripe report; the first day and the lines."""
    async with storage.reader() as uow:
        conn = uow.reconciliations._conn
        # The newest order is the generator's "now" (refunds may be dated after it).
        row = await conn.fetchone("SELECT max(created_at) AS at FROM orders")
        assert row is not None and row["at"] is not None, "no orders in the database"
        last = row["at"].replace(hour=0, minute=0, second=0, microsecond=0)
        day = last - timedelta(days=days)
        rows = await conn.fetchall(
            "SELECT a.provider_ref, a.order_id, a.updated_at, o.amount_total, o.currency "
            "FROM payment_attempts a JOIN orders o ON o.id = a.order_id "
            "WHERE a.state IN ('succeeded', 'refunded') AND a.updated_at >= :day "
            "AND a.updated_at < :next AND a.provider = 'stripe' ORDER BY a.updated_at",
            {"day": day, "next": last},
        )
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(HEADER)
        payout = (last + timedelta(days=1)).strftime("%Y-%m-%d 00:00:00")
        for i, r in enumerate(rows):
            amount, fee = int(r["amount_total"]), round(int(r["amount_total"]) * 0.029 + 30)
            writer.writerow(
                ["po_1", payout, f"txn_{i}", r["updated_at"].strftime("%Y-%m-%d %H:%M:%S"),
                 payout, r["currency"].lower(), f"{amount / 100:.2f}", f"{fee / 100:.2f}",
                 f"{(amount - fee) / 100:.2f}", "charge", "Order", f"ch_{i}",
                 r["provider_ref"], f"ch_{i}", r["order_id"]]
            )  # fmt: skip
    return day, len(rows)


async def reconcile_once(storage: Any, report: Path, work: Path) -> dict[str, Any]:
    from orderguard.cli.reconcile import SETTLEMENT_FORMATS
    from orderguard.reconcile.engine import EngineOptions
    from orderguard.reconcile.report import write_exceptions
    from orderguard.reconcile.run import Request, reconcile

    request = Request(
        [report], options=EngineOptions(provider="stripe"), formats=SETTLEMENT_FORMATS
    )
    engine, outcome = await reconcile(storage, request, work)
    try:
        write_exceptions(engine, outcome, work / "exceptions.csv")
    finally:
        engine.close()
    return {"counts": {k: v for k, v in outcome.counts.items() if v}, **outcome.extra["read"]}


async def full_once(storage: Any, report: Path, work: Path) -> dict[str, Any]:
    """The former way: every order and attempt exported, then matched."""
    from orderguard.cli.reconcile import SETTLEMENT_FORMATS
    from orderguard.reconcile.engine import Engine, EngineOptions
    from orderguard.reconcile.export import export_orders
    from orderguard.reconcile.sources import open_source

    orders, attempts = work / "orders.csv", work / "attempts.csv"
    await export_orders(storage, orders, attempts)
    engine = Engine(work, EngineOptions(provider="stripe"))
    try:
        engine.load_orders(orders, attempts)
        engine.load_report(open_source(report, formats=SETTLEMENT_FORMATS))
        outcome = engine.match()
    finally:
        engine.close()
    return {"counts": {k: v for k, v in outcome.counts.items() if v}}


async def baseline_files(storage: Any, report: Path, root: Path) -> dict[str, Path]:
    """The baseline's files in ``root``: ``report`` and the orders and attempts that
    ``reconcile`` of it reads (a run of it, untimed, writes them: its scope and, when a
    line names nothing, the candidates read for it, appended)."""
    work = root / "scope"
    work.mkdir()
    await reconcile_once(storage, report, work)
    paths = {"report": report, "orders": root / "orders.csv", "attempts": root / "attempts.csv"}
    for name in ("orders", "attempts"):
        with paths[name].open("wb") as sink:
            sink.write((work / f"{name}.csv").read_bytes())
            more = work / f"candidate_{name}.csv"
            if more.exists():  # the same header, then rows
                sink.write(more.read_bytes().split(b"\n", 1)[1])
    return paths


def baseline_once(paths: dict[str, Path], work: Path) -> dict[str, Any]:
    """``bench/reconcile.py``'s plain DuckDB join over ``paths`` (:func:`baseline_files`)."""
    return _baseline(paths, work)


async def main(url: str, rounds: int, full: bool, days: int = 1) -> None:
    from orderguard.storage.connect import connect
    from orderguard.storage.unit_of_work import SqlStorage

    storage = SqlStorage(await connect(url, pool_size=4))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        day, lines = await write_report(storage, root / "settlement.csv", days)
        # The baseline's files: the rows reconcile reads, written once, untimed.
        paths = await baseline_files(storage, root / "settlement.csv", root)
        span = f"{day:%Y-%m-%d}" + (f" and the {days - 1} days after" if days > 1 else "")
        print(f"report: {lines:,} lines of {span}")
        ratios, times = [], {"reconcile": [], "baseline": []}
        for n in range(rounds):
            for kind in ("baseline", "reconcile") if n % 2 else ("reconcile", "baseline"):
                work = root / f"{kind}_{n}"
                work.mkdir()
                started = time.perf_counter()
                if kind == "reconcile":
                    result = await reconcile_once(storage, paths["report"], work)
                else:
                    result = baseline_once(paths, work)
                times[kind].append(time.perf_counter() - started)
                print(f"round {n + 1} {kind}: {times[kind][-1]:.3f}s {result}")
            ratios.append(times["reconcile"][-1] / times["baseline"][-1])
        print(
            f"median: reconcile {statistics.median(times['reconcile']):.3f}s, baseline "
            f"{statistics.median(times['baseline']):.3f}s, ratio (median of rounds) "
            f"{statistics.median(ratios):.2f}x (target <= 2x)"
        )
        if full:
            work = root / "full"
            work.mkdir()
            started = time.perf_counter()
            result = await full_once(storage, paths["report"], work)
            print(f"former full read: {time.perf_counter() - started:.3f}s {result}")
    await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--full", action="store_true", help="also time the former full read")
    parser.add_argument(
        "--days", type=int, default=1, help="whole days the report covers (7: a week's)"
    )
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days is at least 1")
    asyncio.run(main(args.url, args.rounds, args.full, args.days))
