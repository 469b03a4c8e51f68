"""Benchmark: the janitor's resolution rate — stuck orders resolved per second.

``N`` orders are left in ``payment_unknown`` exactly as a charge call whose answer was lost
leaves them (on PostgreSQL ``og_bench``); for half of them the charge really happened at
the sandbox (a separate ``orderguard sandbox-provider`` process, ``none`` profile: zero
latency, no faults). Then the product's own janitor (``Janitor.run_once``, the worker's
duty, default concurrency and lease) runs rounds until every order is settled: for a
charged one it finds the charge and settles ``paid``; for the others the provider has no
record, so the attempt is re-sent under its original key and settles ``paid`` too. Every
order must end ``paid`` with exactly one charge at the sandbox (checked against
``GET /ledger``).

Baseline, same round, at a twin of the sandbox (its own process, started on a copy of the
seeded ledger, so both sides' searches read the same ledger: the sandbox's search reads
every payment intent it holds): the provider calls alone — for each order the
look-up the janitor makes (``find_payments`` by order id) plus, for the uncharged half,
the charge, with the request the janitor sends (``Payments.charge_request``: the order
snapshot in its metadata) — from one client with the same concurrency, through the same
provider object, without the database (the orders are read before the clock starts). The
ratio says what the janitor's bookkeeping (claim and read, lock, settle, timeline, outbox,
release) costs on top of the provider's own answers; the CPU each side's process spends per
order and the janitor's transactions per check (from PostgreSQL's own counters) say where
that cost is.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    PG_BENCH_DB,
    Context,
    bench_db_url,
    median,
    migrated_database,
    pg_execute,
    pg_scalar,
    proc_cpu_seconds,
    run_child,
    start_sandbox,
)

TITLE = "Janitor: stuck orders resolved per second, sandbox provider at zero latency"
ORDERS = 1000
CONCURRENCY = 8  # the janitor's default
TARGET = 0.9  # issue 20: the janitor against the provider calls alone
API_KEY = "sk_test_bench"
TABLES = "orders, order_lines, payment_attempts, timeline, outbox, idempotency_keys"

# The measured part runs in a child process of its own (`python bench/janitor.py MODE ...`),
# so the bench driver's own work never shares its event loop.
_CHILD = Path(__file__).resolve()


async def _seed(url: str, sandbox: str, count: int) -> None:
    """``count`` orders in ``payment_unknown``, every other one charged at the sandbox."""
    from contextlib import ExitStack
    from datetime import UTC, datetime

    from orderguard.bootstrap import configured_providers, open_storage, wire
    from orderguard.config import Settings
    from orderguard.domain.customer import Address, Customer
    from orderguard.domain.events import Cause
    from orderguard.domain.order import Order, OrderLine
    from orderguard.domain.settle import Outcome
    from orderguard.domain.states import AttemptState

    settings = Settings(database_url=url, stripe_api_key=API_KEY, stripe_base_url=sandbox)
    storage = await open_storage(settings)
    resources = ExitStack()
    container = wire(settings, storage, configured_providers(settings, resources))
    customer = Customer(
        "ana@example.com", "Ana Silva", Address("Rua Augusta 1", "Lisboa", "1100-048", "PT"), None
    )
    to_charge = []
    try:
        for i in range(count):
            now = datetime.now(UTC)
            order = Order.place(
                currency="EUR",
                lines=[OrderLine("TEE-M", "T-shirt", 2, 1999)],
                customer=customer,
                at=now,
                merchant_reference=f"bench-janitor-{i}",
            )
            attempt = container.payments.prepare(order, "pm_card_visa", cause=Cause.API, at=now)
            assert attempt is not None
            lost = Outcome(AttemptState.UNKNOWN, reason="no answer within the time budget")
            container.payments.settle(order, attempt.id, lost, cause=Cause.API, at=now)
            async with storage() as uow:
                await uow.orders.add(order)
                await uow.commit()
            if i % 2 == 0:
                to_charge.append((order, attempt))
        gate = asyncio.Semaphore(16)

        async def charge(order: Any, attempt: Any) -> None:
            async with gate:
                outcome = await container.payments.send(order, attempt)
            assert outcome.state is AttemptState.SUCCEEDED, outcome

        await asyncio.gather(*(charge(o, a) for o, a in to_charge))
    finally:
        await container.close()


async def _janitor(url: str, sandbox: str) -> dict[str, Any]:
    """Run janitor rounds until nothing is left in ``payment_unknown``; time and count."""
    from orderguard.bootstrap import open_sql
    from orderguard.config import Settings

    settings = Settings(
        database_url=url, stripe_api_key=API_KEY, stripe_base_url=sandbox, recheck_scale=1e-6
    )
    container = await open_sql(settings)
    rounds = checked = resolved = 0
    try:
        await asyncio.sleep(0.05)  # every order's first wait (scaled) is over
        t0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            report = await container.janitor.run_once(owner="bench", limit=200)
            rounds += 1
            checked += report.checked
            resolved += report.resolved
            if report.checked == 0 and report.resolved == 0:
                async with container.storage() as uow:
                    left = await uow.orders.in_state(
                        _unknown(), updated_before=_far_future(), limit=1
                    )
                if not left:
                    break
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await container.close()
    return {"wall": wall, "cpu": cpu, "rounds": rounds, "checked": checked, "resolved": resolved}


def _unknown() -> Any:
    from orderguard.domain.states import OrderState

    return OrderState.PAYMENT_UNKNOWN


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(9999, 1, 1, tzinfo=UTC)


async def _provider_alone(url: str, sandbox: str, count: int) -> dict[str, Any]:
    """The same provider calls the janitor makes, without the janitor: look-ups for every
    order, a charge for the half never charged (the request ``Payments.send`` builds: the
    order snapshot in its metadata, under a key and an order id of the baseline's own, so
    the ledger check tells them apart), same concurrency, same client code. The orders are
    read before the clock starts."""
    from dataclasses import replace

    from orderguard.bootstrap import open_sql
    from orderguard.config import Settings

    settings = Settings(database_url=url, stripe_api_key=API_KEY, stripe_base_url=sandbox)
    container = await open_sql(settings)
    try:
        async with container.storage() as uow:
            ids = await uow.orders.in_state(_unknown(), updated_before=_far_future(), limit=count)
            orders = [await uow.orders.get(order_id) for order_id in ids]
        provider = container.payments.providers.primary.provider
        gate = asyncio.Semaphore(CONCURRENCY)
        calls = 0

        async def one(order: Any) -> None:
            nonlocal calls
            async with gate:
                found = await provider.find_payments(order.id)
                calls += 1
                if not found:
                    attempt = order.attempts[-1]
                    request = container.payments.charge_request(order, attempt)
                    await provider.create_payment(
                        replace(
                            request,
                            idempotency_key=f"baseline-{attempt.id}",
                            metadata={**request.metadata, "order_id": f"baseline-{order.id}"},
                        )
                    )
                    calls += 1

        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(order) for order in orders))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await container.close()
    return {"wall": wall, "cpu": cpu, "calls": calls}


def _child(mode: str, url: str, sandbox: str, count: int) -> None:
    work = {
        "seed": lambda: _seed(url, sandbox, count),
        "janitor": lambda: _janitor(url, sandbox),
        "baseline": lambda: _provider_alone(url, sandbox, count),
    }[mode]
    result = asyncio.run(work())
    print(json.dumps(result or {}))


def _run_child(ctx: Context, mode: str, url: str, sandbox: str, count: int) -> dict[str, Any]:
    return run_child(ctx, _CHILD, mode, url, sandbox, str(count))


def _ledger_check(sandbox: str, url: str) -> dict[str, int]:
    import httpx
    import psycopg

    book = httpx.get(f"{sandbox}/ledger", timeout=60).json()
    charges: dict[str, int] = {}
    for charge in book["charges"]:
        order_id = charge["metadata"].get("order_id", "")
        if charge["status"] == "succeeded" and not order_id.startswith("baseline-"):
            charges[order_id] = charges.get(order_id, 0) + 1
    with psycopg.connect(url) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall())
        paid = [r[0] for r in conn.execute("SELECT id FROM orders WHERE state = 'paid'")]
    wrong = sum(1 for o in paid if charges.get(o) != 1) + sum(
        1 for o in charges if o not in set(paid)
    )
    return {"paid": int(states.get("paid", 0)), "orders": sum(states.values()), "wrong": wrong}


def _cpu(pid: int) -> float:
    """CPU seconds the process spent so far (over the child's whole life: its start-up is
    small beside the measured part)."""
    return proc_cpu_seconds(pid) or 0.0


def _copy_ledger(ledger: Path, copy: Path) -> None:
    """A consistent copy of a running sandbox's ledger (SQLite's online backup)."""
    import sqlite3

    with sqlite3.connect(ledger) as source, sqlite3.connect(copy) as target:
        source.backup(target)


def transactions() -> int:
    """Transactions committed or rolled back in the bench database so far (PostgreSQL's own
    counters: every claim, settle and lookup the janitor's process made)."""
    return int(
        pg_scalar(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            f"WHERE datname = '{PG_BENCH_DB}'"
        )
    )


def run(ctx: Context, count: int = ORDERS) -> dict[str, Any]:
    url = bench_db_url()
    rounds: list[dict[str, Any]] = []
    for r in range(ctx.rounds):
        migrated_database(ctx)
        ledger = ctx.workdir / f"janitor-{r}.db"
        sandbox = start_sandbox(ctx, "janitor-sandbox", ledger)
        base = f"http://127.0.0.1:{sandbox.port}"
        try:
            _run_child(ctx, "seed", url, base, count)
            pg_execute("CHECKPOINT")
            # interleaved: baseline and janitor in the same round, each against the seeded
            # ledger (the baseline at a twin of the sandbox started on a copy of it): the
            # sandbox's search reads every payment intent it holds, so a side run at the
            # sandbox after the other would also read the other's charges
            twin_ledger = ctx.workdir / f"janitor-{r}-baseline.db"
            _copy_ledger(ledger, twin_ledger)
            twin = start_sandbox(ctx, "janitor-sandbox-twin", twin_ledger)
            try:
                twin_base = f"http://127.0.0.1:{twin.port}"
                cpu = _cpu(twin.pid)
                baseline = _run_child(ctx, "baseline", url, twin_base, count)
                baseline["sandbox_cpu"] = _cpu(twin.pid) - cpu
            finally:
                twin.stop()
            before, cpu = transactions(), _cpu(sandbox.pid)
            janitor = _run_child(ctx, "janitor", url, base, count)
            janitor["sandbox_cpu"] = _cpu(sandbox.pid) - cpu
            time.sleep(1.0)  # the child's backends report their counts as they exit
            janitor["transactions"] = transactions() - before
            check = _ledger_check(base, url)
        finally:
            sandbox.stop()
        ctx.log(
            f"janitor round {r + 1}: {count / janitor['wall']:.0f} orders/s "
            f"(baseline {count / baseline['wall']:.0f}/s), check {check}"
        )
        rounds.append({"janitor": janitor, "baseline": baseline, "check": check})
    return {"count": count, "rounds": rounds}


def render(results: dict[str, Any]) -> str:
    count = results["count"]
    rates = [count / r["janitor"]["wall"] for r in results["rounds"]]
    base_rates = [count / r["baseline"]["wall"] for r in results["rounds"]]
    ratios = [j / b for j, b in zip(rates, base_rates, strict=True)]
    runs = results["rounds"]
    checks = [r["check"] for r in runs]
    all_right = all(c["wrong"] == 0 and c["paid"] == c["orders"] == count for c in checks)
    met = median(ratios) >= TARGET
    lines = [
        f"## {TITLE}",
        "",
        f"{count} orders left in `payment_unknown` (half of them really charged at the "
        "sandbox), resolved by the product's janitor (`Janitor.run_once`, concurrency "
        f"{CONCURRENCY}, PostgreSQL); baseline: the same provider calls without the janitor "
        "(look-up per order, a charge for each uncharged one: the very request the janitor "
        "sends, built by `Payments.charge_request` with the order snapshot in its metadata), "
        "same concurrency, same round, at a twin of the sandbox started on a copy of the "
        "seeded ledger (the sandbox's search reads every payment intent it holds, so a side "
        "run after the other at the same sandbox would read the other's charges too). "
        "Median of "
        f"{len(rates)} rounds; the target (issue 20) is ≥ {TARGET}. (Until issue 20's work "
        "the baseline ran first at the janitor's own sandbox and its charge carried only the "
        "order id in its metadata: both favoured it.)",
        "",
        f"| | resolved per second | ratio to baseline | rounds' ratios | target ≥ {TARGET} |",
        "|---|---:|---:|---|---|",
        f"| janitor | {median(rates):.0f} | **{median(ratios):.2f}x** "
        f"| {', '.join(f'{r:.2f}' for r in ratios)} "
        f"| {'met' if met else '**NOT met**'} (median"
        f"{'' if min(ratios) >= TARGET else '; not in every round'}) |",
        f"| baseline: provider calls alone | {median(base_rates):.0f} | 1.00x | | |",
        "",
        f"Every round: {'all' if all_right else 'NOT all'} {count} orders ended `paid` with "
        "exactly one charge each at the sandbox (checked against `GET /ledger`); "
        f"janitor rounds per run: {', '.join(str(r['janitor']['rounds']) for r in runs)}.",
        "",
        *_why(results),
        "",
        "Per round (janitor / baseline, orders per second): "
        + "; ".join(f"{j:.0f} / {b:.0f}" for j, b in zip(rates, base_rates, strict=True))
        + ".",
    ]
    return "\n".join(lines)


def _why(results: dict[str, Any]) -> list[str]:
    """What the figures say about the ratio, in words (computed, not written by hand)."""
    count, runs = results["count"], results["rounds"]
    if not all("sandbox_cpu" in r["janitor"] and "sandbox_cpu" in r["baseline"] for r in runs):
        return []  # results of an older run: no CPU figures
    own = median([1000 * r["janitor"]["cpu"] / count for r in runs])
    alone = median([1000 * r["baseline"]["cpu"] / count for r in runs])
    tx = median([r["janitor"]["transactions"] / r["janitor"]["checked"] for r in runs])
    at_sandbox = median([1000 * r["janitor"]["sandbox_cpu"] / count for r in runs])
    at_twin = median([1000 * r["baseline"]["sandbox_cpu"] / count for r in runs])
    return [
        f"**Why the ratio is what it is.** Per order, the janitor's process spends {own:.2f} ms "
        f"of CPU where the provider calls alone cost their process {alone:.2f} ms (the Stripe "
        f"client, 1.5 calls per order), so the janitor's own work is {own - alone:.2f} ms per "
        f"order ({100 * (own - alone) / own:.0f}% of its process's CPU), with {tx:.2f} "
        "transactions per check (PostgreSQL's counters): a round claims "
        f"{CONCURRENCY} orders at a time and reads them in the claim's transaction, and the "
        "checks that end together are settled in one transaction (orders locked together, "
        "their updates, attempts, timeline and outbox rows in multi-row statements, the leases "
        "given back in one statement). PostgreSQL's CPU for those transactions comes on top, "
        "on the same 2 cores. What was left in a CPU profile of the janitor's process "
        "(`cProfile`, `time.process_time`, not re-run since the Stripe adapter moved to "
        "aiohttp) was the provider calls (the Stripe SDK and its HTTP client), which the "
        "baseline makes too.",
        "",
        f"The sandbox spends {at_sandbox:.2f} ms of CPU per order while the janitor runs and "
        f"{at_twin:.2f} ms while the baseline runs (over each child's whole life; its search "
        "reads every payment intent it holds). With every process sharing 2 cores (and this "
        "machine's other users), the rates follow the CPU each side needs per order: "
        f"{alone + at_twin:.2f} ms alone against at least {own + at_sandbox:.2f} ms with the "
        f"janitor (PostgreSQL not counted), i.e. at most about "
        f"{(alone + at_twin) / (own + at_sandbox):.2f}x.",
    ]


def section(ctx: Context) -> str:
    results = run(ctx)
    (ctx.workdir / "janitor.json").write_text(json.dumps(results))
    return render(results)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
