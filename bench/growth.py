"""Benchmark: the same operations on an empty database and on ones holding millions of orders.

Databases ``og_growth_<N>`` for each N of ``BENCH_GROWTH_SIZES`` (default ``0,1000000``; add
``10000000`` for the 10 M-order one) are filled by ``bench/datagen.py`` the first time (then
reused: the orders the benchmark's own load places are deleted after each run) and migrated to
the current schema. On each, in the same run:

- intake: ``POST /v1/orders`` through ``orderguard serve --processes=1 --no-worker`` (one
  API process, no worker touching the generated orders) and the load generator of
  ``bench/intake.py``, interleaved over the databases for ``ctx.rounds`` rounds (median);
- paid orders: the same with a card (``"payment": {"method": "pm_card_visa"}``), serve
  charging the sandbox provider in its own process at zero latency (``bench/paid.py``'s
  processes), counting only the answers whose order is ``paid``; in the same rounds;
- with orderguard's own code (storage and services, in this process), ``REPS`` times each
  (p50 and p95, after ``WARMUP`` untimed runs), every writing operation rolled back so
  each run sees the same rows: the janitor's claim of due orders, the outbox relay's
  enqueue and claim (``stream`` sink), the webhook inbox's claim, the database gauges of a
  ``/metrics`` scrape (the collector with its cache off), the console's dashboard counts
  and stuck queue, its search by email, merchant reference and provider reference,
  ``orders list`` with filters (state and week, flagged), idempotency pruning (a day's
  keys), and ``reconcile`` of the last day's settlement report (the orders and attempts
  its period and references need, read by index, then matched: ``bench/reconcile_day.py``)
  with, run by run, its baseline: ``bench/reconcile.py``'s plain DuckDB join over the same
  report and the rows reconcile reads, already on disk (``RECONCILE_REPS`` times each).

The plan of every statement each operation sends on the largest database is recorded with
``EXPLAIN (ANALYZE, BUFFERS)`` (``bench/_plans.py``). Targets (issue 20), largest / empty:
intake, paid orders and the claims <= 1.3x the cost (throughput >= 0.77x); the scrape
<= 100 ms; console queue and search p95 <= 100 ms; on every database, reconcile <= 2x its
DuckDB join.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen
import paid
import reconcile_day
from _common import (
    PG_ADMIN_URL,
    PYTHON,
    VENV_BIN,
    Context,
    Server,
    bench_db_url,
    free_port,
    percentile,
    pg_scalar,
    wait_healthy,
)
from _plans import Recorder, Statement, explain, one_line

TITLE = "Cost as data grows: the same operations on an empty and on million-order databases"
SIZES = [int(n) for n in os.environ.get("BENCH_GROWTH_SIZES", "1000000").split(",")]
#: The baseline: the largest database's last day alone (same work in motion, no history).
BASELINE = 0
REPS = int(os.environ.get("BENCH_GROWTH_REPS", "30"))
WARMUP = 3
#: Runs of reconcile and of its DuckDB join on each database (interleaved, no warm-up).
RECONCILE_REPS = int(os.environ.get("BENCH_GROWTH_RECONCILE_REPS", "3"))
RECONCILE = "reconcile: a day's report"
RECONCILE_BASELINE = "reconcile: DuckDB join (baseline)"
#: Operations timed together, run by run, with another (their baseline).
PAIRS = {RECONCILE: RECONCILE_BASELINE}
#: reconcile / its DuckDB join, on every database.
TARGET_RECONCILE = 2.0
#: Load generator connections for intake.
CONNECTIONS = 32
TARGET_RATIO = 1.3
TARGET_MS = 100.0
#: Operations whose ratio to the empty database has a target, and those with a p95 target.
RATIO_TARGETS = ("janitor claim", "relay claim")
MS_TARGETS = ("/metrics database gauges", "console stuck queue", "console search: email",
              "console search: reference", "console search: provider ref")  # fmt: skip

Op = Callable[[], Awaitable[object]]


def database(ctx: Context, size: int) -> str:
    """``og_growth_<size>`` (``og_growth_lastday_<largest>`` for the baseline), generated
    when missing (or smaller), migrated; its URL."""
    largest = max(SIZES)
    name = f"og_growth_{size}" if size != BASELINE else f"og_growth_lastday_{largest}"
    url = bench_db_url(name)
    exists = pg_scalar(f"SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'") == "1"
    have = int(pg_scalar("SELECT COUNT(*) FROM orders", url)) if exists else -1
    if have < min(size, 1) or not exists:
        ctx.log(f"growth: generating {name}")
        datagen.create_database(PG_ADMIN_URL, name, fresh=True)
        datagen.migrate_database(url)
        datagen.generate(
            url, size or largest, log=lambda m: ctx.log(f"growth: datagen {m}"),
            last_day_only=size == BASELINE,
        )  # fmt: skip
    else:
        datagen.migrate_database(url)
    return url


async def _catch_up(storage: Any) -> None:
    """The relay caught up with every event (none pending), as between bursts: each run
    of the benchmark starts from the same outbox whatever intake left before."""
    now = datetime.now(UTC)
    async with storage() as uow:
        since = now - timedelta(hours=1)
        while await uow.outbox.enqueue("stream", types=None, since=since, now=now, batch=5000):
            pass
        await uow.commit()
    async with storage() as uow:
        conn = uow.orders._conn
        await conn.execute(
            "UPDATE outbox_deliveries SET state = 'delivered', delivered_at = :now, "
            "attempts = attempts + 1 WHERE state = 'pending'",
            {"now": now},
        )
        await uow.commit()


#: The orders the benchmark's own load placed (``bench/_loadgen.py``'s references:
#: ``B``, its 8 hex digits, connection and sequence numbers; the generator's are ``SO-``).
#: The range lets the unique index on ``merchant_reference`` find them; the pattern is exact.
_OURS = (
    "SELECT id FROM orders WHERE merchant_reference >= 'B' AND merchant_reference < 'C' "
    "AND merchant_reference ~ '^B[0-9a-f]{8}[0-9]{12}$'"
)
#: Every row those orders left, children first. Orders, timelines, flags and refunds are
#: never deleted by orderguard (triggers refuse it); the benchmark's database is not a
#: shop's, and ``session_replication_role = replica`` turns those triggers off for this
#: transaction alone.
_FORGET = (
    "DELETE FROM outbox_attempts WHERE event_id IN (SELECT id FROM outbox WHERE order_id "
    "IN (SELECT id FROM ours))",
    "DELETE FROM outbox_deliveries WHERE event_id IN (SELECT id FROM outbox WHERE order_id "
    "IN (SELECT id FROM ours))",
    "DELETE FROM outbox WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM webhook_events WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM idempotency_keys WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM order_flags WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM refunds WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM timeline WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM payment_attempts WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM order_lines WHERE order_id IN (SELECT id FROM ours)",
    "DELETE FROM orders WHERE id IN (SELECT id FROM ours)",
)


def forget_our_orders(url: str) -> int:
    """Delete every order the benchmark's load placed on ``url`` and all it left (serve runs
    without a worker here, so they would stay ``received`` or unsettled and weigh on the
    next run's figures: the scrape counts orders in motion); how many orders went. The
    tables are vacuumed after, so the next run reads no dead rows either."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(b"SET LOCAL session_replication_role = replica")
            conn.execute(f"CREATE TEMP TABLE ours ON COMMIT DROP AS {_OURS}".encode())
            conn.execute(b"ANALYZE ours")
            gone = conn.execute(b"SELECT COUNT(*) FROM ours").fetchone()
            for statement in _FORGET:
                conn.execute(statement.encode())
        count = int(gone[0]) if gone else 0
        if count:
            conn.execute(
                b"VACUUM (ANALYZE) orders, order_lines, payment_attempts, timeline, outbox, "
                b"outbox_deliveries, webhook_events, idempotency_keys"
            )
    return count


# --------------------------------------------------------------------------- intake


def _intake(ctx: Context, url: str) -> float:
    """Orders/s acknowledged by ``orderguard serve`` on ``url`` (one measured window)."""
    port = free_port()
    argv = [str(VENV_BIN / "orderguard"), "serve", "--host=127.0.0.1", f"--port={port}",
            "--processes=1", "--no-worker"]  # fmt: skip
    server = _start(ctx, argv, url, port)
    try:
        return _load(ctx, url, port, {"server": server.pid}, [], "intake")
    finally:
        server.stop()


def _paid(ctx: Context, url: str, tag: str) -> float:
    """Paid orders/s on ``url``: ``POST /v1/orders`` with a card, serve (no worker)
    charging the sandbox provider in its own process (``bench/paid.py``'s ``Setup``),
    only answers with the order ``paid`` counted (any other is an error)."""
    setup = paid.Setup(ctx, url, "external", f"growth-{tag}", worker=False, timeout=90.0)
    try:
        assert setup.server is not None
        extra = [f"--payment={paid.METHOD}", "--expect-state=paid"]
        rps = _load(ctx, url, setup.server.port, setup.pids(), extra, "paid orders")
        setup.alive()
        return rps
    finally:
        setup.stop()
        for ledger in ctx.workdir.glob(f"paid-growth-{tag}-ledger.db*"):
            ledger.unlink(missing_ok=True)


def _load(
    ctx: Context, url: str, port: int, watch: dict[str, int], extra: list[str], what: str
) -> float:
    """``bench/_loadgen.py`` against ``port`` for one measured window; requests/s answered
    as expected (an error fails the run)."""
    done = subprocess.run(
        [PYTHON, str(Path(__file__).with_name("_loadgen.py")), f"--port={port}",
         f"--connections={CONNECTIONS}", f"--warmup={ctx.warmup}",
         f"--duration={ctx.duration}", *extra,
         *(f"--watch={name}={pid}" for name, pid in watch.items())],
        capture_output=True, text=True, timeout=ctx.warmup + ctx.duration + 60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    import json

    result = json.loads(done.stdout)
    if result.get("errors"):
        raise RuntimeError(
            f"{what}: {result['errors']} errors on {url}: {result.get('statuses')} "
            f"{result.get('states', '')}"
        )
    return float(result["rps"])


def _start(ctx: Context, argv: list[str], url: str, port: int) -> Server:
    """``orderguard serve``, given a minute and a half to answer (a busy shared machine)."""
    log = ctx.workdir / "growth-serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ctx.workdir, env=ctx.env(url), stdout=out, stderr=out)
    server = Server("growth-serve", port, proc, log)
    try:
        wait_healthy(port, proc, timeout=90.0)
    except BaseException as stopped:
        server.stop()
        if not isinstance(stopped, Exception):
            raise  # stopped from outside, not a failed start
        raise RuntimeError(f"serve did not start:\n{log.read_text()[-2000:]}") from None
    return server


# --------------------------------------------------------------------------- operations


async def _operations(url: str) -> dict[str, Op]:
    """Each measured operation, as orderguard's code runs it, on ``url``."""
    from orderguard.config import Settings
    from orderguard.domain.schedule import RecheckSchedule
    from orderguard.domain.states import OrderState
    from orderguard.domain.stuck import stuck_horizon
    from orderguard.observability.collector import DatabaseCollector
    from orderguard.observability.hooks import RecordedExceptionCounts, RelayOutbox
    from orderguard.storage.connect import connect
    from orderguard.storage.ports import OrderQuery
    from orderguard.storage.unit_of_work import SqlStorage

    storage = SqlStorage(await connect(url, pool_size=4))
    await _catch_up(storage)
    settings = Settings.load(
        {"ORDERGUARD_DATABASE_URL": url, "ORDERGUARD_NATS_URL": "nats://127.0.0.1:4222"}
    )
    schedule = RecheckSchedule()
    collector = DatabaseCollector(
        storage.stats,
        watched=schedule.watched,
        shortest_wait=schedule.shortest_wait,
        outbox=RelayOutbox(settings, storage),
        reconciliation=RecordedExceptionCounts(storage),
        ttl_s=0.0,
    )
    probe = await _probe_values(storage)
    scratch = Path(tempfile.mkdtemp(prefix="og-growth-"))  # this database's report and files

    def now() -> datetime:
        return datetime.now(UTC)

    async def janitor_claim() -> object:
        async with storage() as uow:  # never committed: rolled back
            return await uow.leases.claim_due_orders(
                schedule.watched, now=now(), first_due_before=now() - schedule.shortest_wait,
                owner="bench", until=now() + timedelta(minutes=1), limit=50,
            )  # fmt: skip

    async def relay_claim() -> object:
        async with storage() as uow:
            since = now() - timedelta(hours=settings.outbox_backfill_hours)
            await uow.outbox.enqueue("stream", types=None, since=since, now=now(), batch=500)
            return await uow.outbox.claim(
                "stream", owner="bench", now=now(), until=now() + timedelta(minutes=1), limit=100
            )

    async def inbox_claim() -> object:
        async with storage() as uow:
            return await uow.webhooks.claim_unprocessed(
                now=now(), owner="bench", until=now() + timedelta(minutes=1), limit=50
            )

    async def search(query: OrderQuery) -> object:
        async with storage.reader() as uow:
            return await uow.orders.search(query)

    async def prune() -> object:
        async with storage() as uow:
            return await uow.idempotency.prune(now() - timedelta(hours=24))

    report = scratch / "settlement.csv"
    await reconcile_day.write_report(storage, report)
    files = await reconcile_day.baseline_files(storage, report, scratch)  # untimed
    runs = iter(range(1_000_000))

    async def reconcile_a_day() -> object:
        """``reconcile`` of the last day's report: the rows its period and references need
        read from PostgreSQL, then matched (``bench/reconcile_day.py``)."""
        work = scratch / f"reconcile-{next(runs)}"
        work.mkdir()
        try:
            return await reconcile_day.reconcile_once(storage, report, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def duckdb_join() -> object:
        """The baseline: the plain DuckDB join over the same report and the rows reconcile
        reads, already on disk (``bench/reconcile.py``)."""
        work = scratch / f"baseline-{next(runs)}"
        work.mkdir()
        try:
            return reconcile_day.baseline_once(files, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def close() -> None:
        await storage.close()
        shutil.rmtree(scratch, ignore_errors=True)

    async def stuck_queue() -> object:
        since = stuck_horizon(now=now())
        await storage.stats.counts(stuck_since=since)
        return await search(OrderQuery(limit=50, stuck_since=since))

    week = now() - timedelta(days=7)
    ops: dict[str, Op] = {
        "janitor claim": janitor_claim,
        "relay claim": relay_claim,
        "webhook inbox claim": inbox_claim,
        "/metrics database gauges": lambda: collector.text(now()),
        "console stuck queue": stuck_queue,
        "console search: email": lambda: storage.console.search(probe["email"], limit=50),
        "console search: reference": lambda: storage.console.search(probe["reference"], limit=50),
        "console search: provider ref": lambda: storage.console.search(probe["ref"], limit=50),
        "orders list --state paid --since 7d": lambda: search(
            OrderQuery(limit=50, state=OrderState.PAID, created_after=week)
        ),
        "orders list --flagged": lambda: search(OrderQuery(limit=50, flagged=True)),
        "idempotency prune (1 day)": prune,
        RECONCILE: reconcile_a_day,
        RECONCILE_BASELINE: duckdb_join,
    }
    ops["_close"] = close
    return ops


async def _probe_values(storage: Any) -> dict[str, str]:
    """An email, a merchant reference and a provider reference that exist (or not, empty)."""
    async with storage.reader() as uow:
        conn = uow.orders._conn
        row = await conn.fetchone(
            "SELECT o.customer_email, o.merchant_reference, a.provider_ref FROM orders o "
            "JOIN payment_attempts a ON a.order_id = o.id ORDER BY o.id LIMIT 1"
        )
    if row is None:
        return {"email": "nobody@example.com", "reference": "SO-0", "ref": "pi_0"}
    return {"email": row["customer_email"].upper(), "reference": row["merchant_reference"],
            "ref": row["provider_ref"]}  # fmt: skip


async def _measure(urls: dict[int, str]) -> dict[int, dict[str, Any]]:
    """Time each operation on every database, the databases taking turns rep by rep (so a
    busy moment of the machine falls on all alike); record the statements once each."""
    ops = {size: await _operations(url) for size, url in urls.items()}
    closers = [o.pop("_close") for o in ops.values()]
    timings: dict[int, dict[str, list[float]]] = {size: {} for size in urls}
    recorded: dict[int, dict[str, list[Statement]]] = {size: {} for size in urls}
    try:
        for label in ops[BASELINE]:
            if label in PAIRS.values():
                continue  # timed with its pair
            together = [label, PAIRS[label]] if label in PAIRS else [label]
            slow = label.startswith("reconcile")
            for size, by_label in ops.items():
                for one in together:
                    recorder = Recorder()
                    async with recorder.active():
                        await by_label[one]()
                    recorded[size][one] = recorder.worth_planning()
                    for _ in range(0 if slow else WARMUP):
                        await by_label[one]()
            for rep in range(RECONCILE_REPS if slow else REPS):
                for size, by_label in ops.items():
                    for one in together if rep % 2 == 0 else together[::-1]:
                        started = time.perf_counter()
                        await by_label[one]()
                        elapsed = (time.perf_counter() - started) * 1000
                        timings[size].setdefault(one, []).append(elapsed)
    finally:
        for close in closers:
            await close()
    # run by run (before sorting): reconcile / its DuckDB join of the same run
    paired = {
        size: [r / b for r, b in zip(t[RECONCILE], t[RECONCILE_BASELINE], strict=True)]
        for size, t in timings.items()
    }
    top = max(urls)
    plans = {
        label: [(one_line(s.sql), await explain(urls[top], s)) for s in statements]
        for label, statements in recorded[top].items()
    }
    return {
        size: {"timings": {k: sorted(v) for k, v in timings[size].items()},
               "reconcile_ratios": paired[size]}
        | ({"plans": plans} if size == top else {})
        for size in urls
    }  # fmt: skip


# --------------------------------------------------------------------------- section


def run(ctx: Context) -> dict[str, Any]:
    urls = {size: database(ctx, size) for size in [BASELINE, *SIZES]}
    for size, url in urls.items():  # what an earlier, interrupted run left
        if left := forget_our_orders(url):
            ctx.log(f"growth: {left} orders an earlier run placed deleted on {_label(size)}")
    ctx.log("growth: operations, the databases taking turns")
    ops = asyncio.run(_measure(urls))
    intake: dict[int, list[float]] = {size: [] for size in urls}
    paid_rps: dict[int, list[float]] = {size: [] for size in urls}
    stopped = False
    try:
        for round_no in range(ctx.rounds):
            for size, url in urls.items():
                ctx.log(f"growth: intake round {round_no + 1} on {_label(size)}")
                intake[size].append(_intake(ctx, url))
                ctx.log(f"growth: paid orders round {round_no + 1} on {_label(size)}")
                paid_rps[size].append(_paid(ctx, url, f"{size}-{round_no}"))
    except (SystemExit, KeyboardInterrupt):
        stopped = True  # the next run deletes what this one placed, before it measures
        raise
    finally:
        if not stopped:
            for size, url in urls.items():
                gone = forget_our_orders(url)
                ctx.log(f"growth: the {gone} orders this run placed deleted on {_label(size)}")
    counts = {size: pg_scalar("SELECT COUNT(*) FROM orders", url) for size, url in urls.items()}
    sizes = {size: pg_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))", url)
             for size, url in urls.items()}  # fmt: skip
    return {"intake": intake, "paid": paid_rps, "ops": ops, "db_sizes": sizes, "orders": counts}


def _label(size: int) -> str:
    return "no history" if size == BASELINE else f"{size / 1e6:g} M"


def render(ctx: Context, results: dict[str, Any]) -> str:
    sizes = sorted(results["intake"])
    base, top = sizes[0], sizes[-1]
    held = ", ".join(f"{_label(s)} {int(results['orders'][s]):,}" for s in sizes)
    on_disk = ", ".join(f"{_label(s)} {results['db_sizes'][s]}" for s in sizes)
    head = "| operation | " + " | ".join(f"{_label(s)} p50 / p95 ms" for s in sizes)
    head += f" | {_label(top)} / {_label(base)} (p50) | target |"
    lines = [
        f"## {TITLE}",
        "",
        f"Measured {ctx.started} by `{ctx.command}` (sizes: `BENCH_GROWTH_SIZES="
        f"{','.join(str(s) for s in sizes if s != BASELINE)}`; databases filled by "
        f"`bench/datagen.py`; orders: {held}; on disk: {on_disk}). The baseline, *no "
        f"history*, is the {_label(top)}-order shop's last day alone: the same kind and amount "
        "of work in motion (due rechecks, stuck orders, keys to prune), none of the two "
        "years behind it, so each ratio is the cost of the history. Each operation "
        f"{REPS} times after {WARMUP} untimed runs (reconcile and its DuckDB join: "
        f"{RECONCILE_REPS} times each, alternating, after one untimed run), in this "
        "process through orderguard's own storage code, the databases taking turns run by "
        "run, writes rolled back, the relay caught up first; then intake and paid orders "
        f"({CONNECTIONS} connections, serve without a worker; paid: a card charged at the "
        "sandbox provider in its own process, at zero latency, only orders answered `paid` "
        "counted), the databases taking turns round by round.",
        "",
        "| requests/s, median of rounds | "
        + " | ".join(_label(s) for s in sizes)
        + f" | {_label(top)} / {_label(base)} | target |",
        "|---|" + "---|" * (len(sizes) + 2),
    ]
    for what, key in (("intake: POST /v1/orders", "intake"),
                      ("paid orders: POST /v1/orders with a card", "paid")):  # fmt: skip
        if key not in results:
            continue
        medians = {s: statistics.median(results[key][s]) for s in sizes}
        ratio = medians[top] / medians[base]
        lines.append(
            f"| {what} | " + " | ".join(f"{medians[s]:.0f}" for s in sizes)
            + f" | {ratio:.2f} | ≥ {1 / TARGET_RATIO:.2f} ({_met(ratio >= 1 / TARGET_RATIO)}) |"
        )  # fmt: skip
    lines += _reconcile_rows(results, sizes)
    lines += ["", head, "|---|" + "---|" * (len(sizes) + 2)]
    for label in results["ops"][base]["timings"]:
        cells, p50s = [], {}
        for s in sizes:
            t = results["ops"][s]["timings"][label]
            p50s[s] = percentile(t, 50)
            cells.append(f"{p50s[s]:.2f} / {percentile(t, 95):.2f}")
        growth = p50s[top] / p50s[base] if p50s[base] else float("nan")
        lines.append(
            f"| {label} | {' | '.join(cells)} | {growth:.2f} "
            f"| {_target(label, results, top, growth)} |"
        )
    lines += ["", f"Plans on the {_label(top)}-order database (`EXPLAIN (ANALYZE, BUFFERS)` of "
              "each statement the operation sent, writes rolled back):", ""]  # fmt: skip
    for label, plans in results["ops"][top].get("plans", {}).items():
        if not plans:  # sent no statement worth a plan (the DuckDB join)
            continue
        lines.append(f"<details><summary>{label}</summary>\n")
        for sql, plan in plans:
            lines += ["```", sql, "", plan, "```", ""]
        lines.append("</details>\n")
    return "\n".join(lines)


def _reconcile_rows(results: dict[str, Any], sizes: list[int]) -> list[str]:
    """reconcile of a day's report against its plain DuckDB join, database by database."""
    ops = results["ops"]
    if any("reconcile_ratios" not in ops[s] for s in sizes):
        return []
    lines = [
        "",
        "| reconcile of the last day's report, p50 s (median of runs' ratios) | "
        + " | ".join(_label(s) for s in sizes) + " | target |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]  # fmt: skip
    cells, ok = [], True
    for s in sizes:
        ratio = statistics.median(ops[s]["reconcile_ratios"])
        ok = ok and ratio <= TARGET_RECONCILE
        cells.append(
            f"{percentile(ops[s]['timings'][RECONCILE], 50) / 1000:.3f} / "
            f"{percentile(ops[s]['timings'][RECONCILE_BASELINE], 50) / 1000:.3f} "
            f"= **{ratio:.2f}x**"
        )
    lines.append(
        "| reconcile / DuckDB join over the same report and the rows reconcile reads | "
        + " | ".join(cells) + f" | ≤ {TARGET_RECONCILE:g}x on each ({_met(ok)}) |"
    )  # fmt: skip
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _target(label: str, results: dict[str, Any], top: int, growth: float) -> str:
    if label in RATIO_TARGETS:
        return f"≤ {TARGET_RATIO} ({'met' if growth <= TARGET_RATIO else 'NOT met'})"
    if label in MS_TARGETS:
        p95 = percentile(results["ops"][top]["timings"][label], 95)
        return f"p95 ≤ {TARGET_MS:.0f} ms ({'met' if p95 <= TARGET_MS else 'NOT met'})"
    return ""


def section(ctx: Context) -> str:
    return render(ctx, run(ctx))
