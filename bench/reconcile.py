"""Benchmark: reconcile a settlement report of N lines against N orders (default 1,000,000).

The report is a Stripe itemized payout reconciliation CSV (the same columns as
``tests/fixtures/reconcile/stripe_itemized.csv``); the orders are the two CSV files
``orderguard reconcile`` exports from SQLite or PostgreSQL (orders, payment attempts).
Of the report's lines about 96% confirm an order, 1% disagree on the amount, 0.5% are
orphan charges, 0.5% repeat a charge, 1% are refunds and 1% fees; the orders the report
leaves out are *missing at the provider*.

Two variants run in their own processes, interleaved for ``ctx.rounds`` rounds, at least
``MIN_ROUNDS`` (median of the rounds' ratios):

- ``engine``: the reconciliation engine on those files (recognise the report, load it and
  the orders into DuckDB, normalise every line, match by reference, order id and amount,
  categorise, find the missing orders, total per category and currency, and write the
  exceptions CSV);
- ``baseline``: one plain DuckDB query joining the same three files (report -> attempts
  by reference -> orders) and counting the equal amounts.

Peak memory is the worker process's peak resident set (``VmHWM``). Targets: engine <= 2x
the baseline's time, peak <= 1.5 GB. ``BENCH_RECONCILE_LINES`` (or ``--lines`` when run alone:
``python bench/reconcile.py --lines 10000``) sets N for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, Context

TITLE = "Settlement reconciliation: N report lines against N orders, DuckDB engine"
#: Lines in the report and orders in the database, unless BENCH_RECONCILE_LINES says.
LINES = int(os.environ.get("BENCH_RECONCILE_LINES", "1000000"))
#: Fewest interleaved rounds, whatever ``--rounds`` says.
MIN_ROUNDS = 7
#: The engine's DuckDB memory limit in the benchmark (the product's default).
MEMORY_LIMIT = "1GB"


def generate(workdir: Path, n: int) -> dict[str, Path]:
    """Write the report and the two order exports for ``n`` lines and orders."""
    import duckdb

    paths = {
        "report": workdir / "settlement.csv",
        "orders": workdir / "orders.csv",
        "attempts": workdir / "attempts.csv",
    }
    db = duckdb.connect()
    db.execute(
        f"""
        CREATE TABLE o AS SELECT i,
            'ord_' || lpad(CAST(i AS VARCHAR), 8, '0') AS order_id,
            'M-' || CAST(i AS VARCHAR) AS merchant_reference,
            1000 + (i * 7919) % 90000 AS amount,
            TIMESTAMPTZ '2026-11-01 00:00:00+00' + to_seconds(i % 86400) AS ts
        FROM range({n}) t(i)
        """
    )
    db.execute(
        f"""COPY (SELECT order_id, merchant_reference, 'paid' AS state, 'EUR' AS currency,
            amount, ts AS created_at FROM o) TO '{paths["orders"]}' (HEADER)"""
    )
    db.execute(
        f"""COPY (SELECT order_id, 'stripe' AS provider, 'pi_' || CAST(i AS VARCHAR)
            AS provider_ref, 'succeeded' AS state, ts AS updated_at FROM o)
            TO '{paths["attempts"]}' (HEADER)"""
    )
    # Line i is about order i: 96% charges as ordered, the rest as the docstring says.
    db.execute(
        f"""
        COPY (
        SELECT 'po_1' AS automatic_payout_id, '2026-11-03 00:00:00' AS
            automatic_payout_effective_at, 'txn_' || CAST(i AS VARCHAR) AS balance_transaction_id,
            strftime(ts, '%Y-%m-%d %H:%M:%S') AS created_utc,
            '2026-11-03 00:00:00' AS available_on_utc, 'eur' AS currency,
            printf('%.2f', (CASE WHEN k = 1 THEN amount + 1 WHEN k = 2 THEN amount + 100000
                WHEN k IN (4, 5) THEN -amount / 2
                ELSE amount END) / 100.0) AS gross,
            printf('%.2f', round(amount * 0.029 + 30) / 100.0) AS fee,
            printf('%.2f', (amount - round(amount * 0.029 + 30)) / 100.0) AS net,
            CASE WHEN k = 4 THEN 'refund' WHEN k = 5 THEN 'fee' ELSE 'charge' END
                AS reporting_category,
            'Order ' || order_id AS description,
            'ch_' || CAST(i AS VARCHAR) AS charge_id,
            CASE WHEN k = 2 THEN 'pi_x' || CAST(i AS VARCHAR)
                 WHEN k = 3 THEN 'pi_' || CAST(i - 1 AS VARCHAR)
                 ELSE 'pi_' || CAST(i AS VARCHAR) END AS payment_intent_id,
            'ch_' || CAST(i AS VARCHAR) AS source_id,
            CASE WHEN k = 2 THEN '' ELSE order_id END AS "payment_metadata[order_id]"
        FROM (SELECT *, CASE WHEN i % 200 = 7 THEN 2 WHEN i % 200 = 9 THEN 3
                             WHEN i % 100 = 1 THEN 1 WHEN i % 100 = 3 THEN 4
                             WHEN i % 100 = 5 THEN 5 ELSE 0 END AS k FROM o)
        ORDER BY i) TO '{paths["report"]}' (HEADER)
        """
    )
    db.close()
    return paths


def _engine(paths: dict[str, Path], scratch: Path) -> dict[str, Any]:
    from orderguard.cli.reconcile import SETTLEMENT_FORMATS
    from orderguard.reconcile.engine import Engine, EngineOptions
    from orderguard.reconcile.report import write_exceptions
    from orderguard.reconcile.sources import open_source

    engine = Engine(scratch, EngineOptions(memory_limit=MEMORY_LIMIT))
    try:
        engine.load_orders(paths["orders"], paths["attempts"])
        engine.load_report(open_source(paths["report"], formats=SETTLEMENT_FORMATS))
        outcome = engine.match()
        exceptions = write_exceptions(engine, outcome, scratch / "exceptions.csv")
    finally:
        engine.close()
    return {"counts": outcome.counts, "errors": len(outcome.errors), "exceptions": exceptions}


def _baseline(paths: dict[str, Path], scratch: Path) -> dict[str, Any]:
    import duckdb

    db = duckdb.connect()
    db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    db.execute(f"SET temp_directory = '{scratch / 'spill'}'")
    row = db.execute(
        f"""
        SELECT count(*), count(o.order_id),
            count(*) FILTER (WHERE o.amount = CAST(round(s.gross * 100) AS BIGINT))
        FROM read_csv('{paths["report"]}') s
        LEFT JOIN read_csv('{paths["attempts"]}') a ON a.provider_ref = s.payment_intent_id
        LEFT JOIN read_csv('{paths["orders"]}') o ON o.order_id = a.order_id
        """
    ).fetchone()
    db.close()
    assert row is not None
    return {"lines": row[0], "joined": row[1], "equal": row[2]}


def worker(kind: str, data: Path) -> None:
    """Run one variant in this process and print its time and peak memory as JSON."""
    paths = {
        name: data / f"{stem}.csv"
        for name, stem in (("report", "settlement"), ("orders", "orders"), ("attempts", "attempts"))
    }
    import duckdb  # noqa: F401  (imports are not the work measured)

    from orderguard.cli import reconcile as command  # noqa: F401  (the format table)
    from orderguard.reconcile import engine, report, sources  # noqa: F401

    with tempfile.TemporaryDirectory(dir=data) as scratch:
        cpu = _cpu()
        started = time.perf_counter()
        result = (_engine if kind == "engine" else _baseline)(paths, Path(scratch))
        seconds = time.perf_counter() - started
        cpu = _cpu() - cpu
    peak = _peak_rss()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_bytes": peak, "result": result}))


def _cpu() -> float:
    """CPU seconds this process used (user + system, all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    """This process's peak resident set in bytes (VmHWM: this program's own, unlike
    ``ru_maxrss``, which a fresh process inherits from the one that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _spawn(kind: str, data: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [PYTHON, __file__, "--worker", kind, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(ctx: Context, lines: int = LINES) -> dict[str, Any]:
    data = ctx.workdir / "reconcile"
    data.mkdir(exist_ok=True)
    started = time.perf_counter()
    generate(data, lines)
    ctx.log(
        f"reconcile: generated {lines:,} lines and orders in {time.perf_counter() - started:.1f}s"
    )
    runs: dict[str, list[dict[str, Any]]] = {"engine": [], "baseline": []}
    # A round takes seconds and single rounds swing by a quarter on a shared machine: at
    # least MIN_ROUNDS of them, so the median is not one noisy pair.
    for round_no in range(max(ctx.rounds, MIN_ROUNDS)):
        for kind in ("baseline", "engine") if round_no % 2 else ("engine", "baseline"):
            r = _spawn(kind, data)
            runs[kind].append(r)
            ctx.log(
                f"reconcile: {kind} {r['seconds']:.2f}s, peak {r['peak_bytes'] / 2**20:.0f} MiB"
            )
    return {"lines": lines, "runs": runs}


def planted(n: int) -> dict[str, int]:
    """What ``generate`` plants in ``n`` lines (``n`` a multiple of 200): the only right
    answer, checked for every round of the engine."""
    return {
        "matched": n - n // 200 * 2 - n // 100 * 3,
        "amount_mismatch": n // 100,
        "missing_in_orders": n // 200,
        "duplicate": n // 200,
        "refund": n // 100,
        "fee": n // 100,
        "missing_at_provider": n // 100 * 3,
    }


def check(results: dict[str, Any]) -> None:
    """Fail the benchmark when any round of the engine found anything but what was planted."""
    expected = planted(results["lines"])
    for number, r in enumerate(results["runs"]["engine"], 1):
        found = {k: v for k, v in r["result"]["counts"].items() if v}
        if found != expected:
            raise RuntimeError(f"reconcile round {number} found {found}, planted {expected}")


def render(results: dict[str, Any]) -> str:
    check(results)
    runs = results["runs"]
    engine = statistics.median(r["seconds"] for r in runs["engine"])
    baseline = statistics.median(r["seconds"] for r in runs["baseline"])
    pairs = list(zip(runs["engine"], runs["baseline"], strict=True))
    ratio = statistics.median(e["seconds"] / b["seconds"] for e, b in pairs)
    cpu_engine = statistics.median(r["cpu"] for r in runs["engine"])
    cpu_baseline = statistics.median(r["cpu"] for r in runs["baseline"])
    cpu_ratio = statistics.median(e["cpu"] / b["cpu"] for e, b in pairs)
    peak = max(r["peak_bytes"] for r in runs["engine"]) / 2**20
    base_peak = max(r["peak_bytes"] for r in runs["baseline"]) / 2**20
    counts = runs["engine"][0]["result"]["counts"]
    time_ok = "met" if ratio <= 2 else "**missed**"
    memory_ok = "met" if peak <= 1536 else "**missed**"
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items() if v)
    every = ", ".join(
        f"{e['seconds']:.2f}/{b['seconds']:.2f}"
        for e, b in zip(runs["engine"], runs["baseline"], strict=True)
    )
    return f"""## {TITLE}

{results["lines"]:,} report lines (Stripe itemized payout reconciliation CSV) against
{results["lines"]:,} orders (the CSV files `orderguard reconcile` exports), each variant in
its own process, {len(runs["engine"])} interleaved rounds, medians. See `bench/reconcile.py`.

| | wall time | CPU time | peak RSS |
|---|---|---|---|
| engine: load, parse, match, categorise, total, exceptions CSV \
| {engine:.2f} s | {cpu_engine:.2f} s | {peak:.0f} MiB |
| baseline: one plain DuckDB join of the same three files \
| {baseline:.2f} s | {cpu_baseline:.2f} s | {base_peak:.0f} MiB |
| **engine / baseline** (median of the rounds' ratios) \
| **{ratio:.2f}x** (target <= 2x: {time_ok}) | {cpu_ratio:.2f}x | <= 1.5 GB: {memory_ok} |

CPU time (user + system, all threads) is shown because the machine is shared: other work
stretches wall time, most of all for the longer run.

Every round (engine/baseline seconds): {every}.

What the engine found, checked in every round against what the generator planted:

| category | lines |
|---|---|
{rows}
"""


def section(ctx: Context) -> str:
    return render(run(ctx))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["engine", "baseline"])
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data)
        return
    with tempfile.TemporaryDirectory(prefix="og-bench-") as scratch:
        ctx = Context(
            rounds=args.rounds,
            warmup=0,
            duration=0,
            connections=0,
            pool_size=None,
            workdir=Path(scratch),
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        print(render(run(ctx, args.lines)))


if __name__ == "__main__":
    main()
