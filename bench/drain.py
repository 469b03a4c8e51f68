"""Benchmark: recovery after an outage — orders waiting in ``received`` drained per second.

``N`` orders are placed (through the product's intake, the code ``POST /v1/orders`` runs)
while every provider's circuit is open, so each one waits in ``received`` with its payment
method (on PostgreSQL ``og_bench``). Then the provider is back: the measured process wires
the product with its breaker still open and its cool-down over (the state a worker is in
when the provider returns; the cool-down itself, ``ORDERGUARD_BREAKER_COOL_DOWN_S``, is a
setting and not measured) and runs the real worker (``Worker.run``, every duty on its own
interval, default settings) until every order is ``paid``. The sandbox provider is a
separate ``orderguard sandbox-provider`` process (``none`` profile: zero latency, no faults).

Baseline, same run, same sandbox process: the same ``N`` charges (same amount, currency,
payment method, return URL and metadata size) made directly with the Stripe SDK
(``PaymentIntent.create`` with ``confirm``), at the concurrency the worker drains with,
without orderguard or its database. The ratio says what keeping each order safe (lock,
re-check, attempt committed before the call, settle, timeline, outbox) and the worker's own
pace cost on top of the provider's answers. Each round runs both against the same sandbox, the
drain first (the worker's sweep would take the direct charges, which no order owns, for
orphans).

``BENCH_DRAIN_CONCURRENCY`` tries another ``ORDERGUARD_WAITING_CONCURRENCY`` than the
product's default, for both sides.

Every round fails unless every order ended ``paid`` with exactly one succeeded charge at
the sandbox (checked against the sandbox's ``GET /ledger``, not orderguard's own numbers)
and every baseline charge succeeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BODY,
    Context,
    CpuSnapshot,
    Server,
    bench_db_url,
    cpu_usage,
    median,
    migrated_database,
    pg_execute,
    run_child,
    start_sandbox,
)

TITLE = "Recovery: orders waiting through an outage, drained when the provider returns"
ORDERS = 2000
API_KEY = "sk_test_bench"
METHOD = "pm_card_visa"
PHONE = "+351912345678"  # BODY's phone as the API stores it (E.164)
RETURN_URL = "http://127.0.0.1:8000/orders/{order_id}/return?token=bench"
#: The drain should pay orders at least this fraction of the direct rate.
TARGET = 0.8
#: Longest a drain may take before the round fails.
DRAIN_TIMEOUT_S = 900.0
#: How often the drain's watcher counts the unpaid orders, in seconds. It shares the worker's
#: process and event loop: every 10 ms it took 5-7% of the worker's CPU; every 50 ms it times
#: a drain of seconds to within a few percent.
POLL_S = 0.05

# The measured parts run in child processes of their own (`python bench/drain.py MODE ...`),
# so the bench driver's own work never shares their event loop.
_CHILD = Path(__file__).resolve()


def _settings(url: str, sandbox: str) -> Any:
    """The product's settings from this process's environment (``Context.env``), pointed
    at the bench database and sandbox."""
    from orderguard.config import Settings

    env = dict(os.environ)
    env.update(
        ORDERGUARD_DATABASE_URL=url,
        ORDERGUARD_STRIPE_API_KEY=API_KEY,
        ORDERGUARD_STRIPE_BASE_URL=sandbox,
    )
    if "BENCH_DRAIN_CONCURRENCY" in env:  # to try another concurrency than the product's
        env["ORDERGUARD_WAITING_CONCURRENCY"] = env["BENCH_DRAIN_CONCURRENCY"]
    return Settings.load(env)


class _BreakerClock:
    """A breaker's clock that stands at ``at`` until ``run()``, then follows the real one."""

    def __init__(self, at: float) -> None:
        self.at: float | None = at

    def __call__(self) -> float:
        return time.monotonic() if self.at is None else self.at

    def run(self) -> None:
        self.at = None


def _open_every_circuit(container: Any, *, cool_down_over: bool) -> None:
    """Open every provider's breaker the way failures do, on a clock of the bench's own,
    so neither needs sleeping nor a branch in the product.

    While seeding the clock stands still: the outage lasts however long placing the orders
    takes. For the drain the failures are recorded one cool-down in the past, then the
    clock runs: the next call is the circuit's trial.
    """
    from orderguard.observability.instrumented import ObservedBreaker

    settings = container.settings
    for slot in container.payments.providers.slots:
        cool_down = settings.breaker_cool_down_s
        clock = _BreakerClock(time.monotonic() - (cool_down if cool_down_over else 0.0))
        slot.breaker = ObservedBreaker(
            slot.name,
            failure_threshold=settings.breaker_threshold,
            cool_down_s=cool_down,
            clock=clock,
        )
        for _ in range(settings.breaker_threshold):
            slot.breaker.record_failure()
        if cool_down_over:
            clock.run()


async def _seed(url: str, sandbox: str, count: int) -> dict[str, Any]:
    """``count`` orders placed with a card while every circuit is open: all wait."""
    from orderguard.bootstrap import open_sql
    from orderguard.domain.customer import Address, Customer
    from orderguard.domain.order import OrderLine
    from orderguard.services.idempotency import KeyedRequest, fingerprint
    from orderguard.services.intake import PlaceOrder

    container = await open_sql(_settings(url, sandbox))
    _open_every_circuit(container, cool_down_over=False)
    c, a = BODY["customer"], BODY["customer"]["shipping_address"]
    address = Address(a["line1"], a["city"], a["postal_code"], a["country"])
    customer = Customer(c["email"].lower(), c["name"], address, PHONE)
    lines = [OrderLine(i["sku"], i["name"], i["quantity"], i["unit_amount"]) for i in BODY["items"]]
    gate = asyncio.Semaphore(16)
    states: dict[str, int] = {}

    async def place(i: int) -> None:
        command = PlaceOrder(
            request=KeyedRequest("bench", f"drain-{i}", fingerprint("POST", "/v1/orders", i)),
            currency=BODY["currency"],
            lines=lines,
            customer=customer,
            merchant_reference=f"bench-drain-{i}",
            payment_method=METHOD,
        )
        async with gate:
            answer = await container.intake.place(command)
        state = json.loads(answer.body)["state"]
        states[state] = states.get(state, 0) + 1

    try:
        await asyncio.gather(*(place(i) for i in range(count)))
    finally:
        await container.close()
    if states != {"received": count}:
        raise RuntimeError(f"seeding: every order should wait in received, got {states}")
    return {"states": states}


async def _not_paid(db: Any) -> int:
    from orderguard.storage.database import transaction

    async with transaction(db, write=False) as conn:
        row = await conn.fetchone("SELECT COUNT(*) AS n FROM orders WHERE state <> 'paid'")
    assert row is not None
    return int(row["n"])


async def _drain(url: str, sandbox: str, count: int) -> dict[str, Any]:
    """The provider is back: run the worker until no order is left unpaid; time it."""
    from orderguard.bootstrap import new_worker, open_sql
    from orderguard.storage.connect import connect

    container = await open_sql(_settings(url, sandbox))
    _open_every_circuit(container, cool_down_over=True)
    watcher = await connect(url, pool_size=1)
    stop = asyncio.Event()
    polls = 0
    try:
        if await _not_paid(watcher) != count:
            raise RuntimeError("draining: the seeded orders are not all waiting")
        t0, cpu0 = time.perf_counter(), time.process_time()
        worker = asyncio.create_task(new_worker(container, worker_id="bench-drain").run(stop))
        while await _not_paid(watcher):
            polls += 1
            if worker.done() or time.perf_counter() - t0 > DRAIN_TIMEOUT_S:
                raise RuntimeError(f"draining: still unpaid after {time.perf_counter() - t0:.0f}s")
            await asyncio.sleep(POLL_S)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stop.set()
        await worker
    finally:
        stop.set()
        await watcher.close()
        await container.close()
    concurrency = _concurrency(container.settings)
    return {"wall": wall, "cpu": cpu, "polls": polls, "concurrency": concurrency}


def _concurrency(settings: Any) -> int:
    """How many waiting orders the worker charges at once (what the baseline uses too)."""
    return int(settings.waiting_concurrency)


def _metadata(order_id: str, n: int) -> dict[str, str]:
    """Metadata of the size orderguard sends (ids and the order snapshot in 480-char chunks)."""
    c, a = BODY["customer"], BODY["customer"]["shipping_address"]
    snapshot = {
        "id": order_id,
        "ref": f"bench-drain-{n}",
        "cur": BODY["currency"],
        "total": sum(i["quantity"] * i["unit_amount"] for i in BODY["items"]),
        "loc": "en",
        "at": "2026-01-01T00:00:00.000000+00:00",
        "lines": [[i["sku"], i["name"], i["quantity"], i["unit_amount"]] for i in BODY["items"]],
        "cust": [c["email"].lower(), c["name"], PHONE],
        "addr": [a["line1"], None, a["city"], a["postal_code"], a["country"]],
    }
    text = json.dumps(snapshot, separators=(",", ":"))
    chunks = {f"og_snap_{i // 480}": text[i : i + 480] for i in range(0, len(text), 480)}
    return {"order_id": order_id, "attempt_id": f"baseline-pay-{n}", **chunks}


async def _direct(url: str, sandbox: str, count: int) -> dict[str, Any]:
    """The same charges with the Stripe SDK straight to the sandbox, same concurrency."""
    import stripe

    client = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sandbox},
        http_client=stripe.HTTPXClient(),
        max_network_retries=2,  # same idempotency key: a dropped connection never charges twice
    )
    concurrency = _concurrency(_settings(url, sandbox))
    gate = asyncio.Semaphore(concurrency)
    amount = sum(i["quantity"] * i["unit_amount"] for i in BODY["items"])
    statuses: dict[str, int] = {}

    async def charge(n: int) -> None:
        order_id = f"baseline-{n}"
        async with gate:
            intent = await client.v1.payment_intents.create_async(
                {
                    "amount": amount,
                    "currency": BODY["currency"].lower(),
                    "payment_method": METHOD,
                    "confirm": True,
                    "return_url": RETURN_URL.format(order_id=order_id),
                    "metadata": _metadata(order_id, n),
                },
                options={"idempotency_key": f"baseline-{n}"},
            )
        statuses[intent.status] = statuses.get(intent.status, 0) + 1

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(charge(n) for n in range(count)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if statuses != {"succeeded": count}:
        raise RuntimeError(f"direct charges: every one should succeed, got {statuses}")
    return {"wall": wall, "cpu": cpu, "concurrency": concurrency}


def _child(mode: str, url: str, sandbox: str, count: int) -> None:
    work = {"seed": _seed, "drain": _drain, "direct": _direct}[mode]
    print(json.dumps(asyncio.run(work(url, sandbox, count))))


def _measured(ctx: Context, mode: str, url: str, sandbox: Server, count: int) -> dict[str, Any]:
    """Run child ``mode``; add the CPU seconds the sandbox and PostgreSQL spent meanwhile."""
    before = CpuSnapshot.take({"sandbox": sandbox.pid})
    result = _run_child(ctx, mode, url, f"http://127.0.0.1:{sandbox.port}", count)
    after = CpuSnapshot.take({"sandbox": sandbox.pid})
    wall = after.at - before.at
    usage = cpu_usage(before, after)
    result["sandbox_cpu"] = usage["sandbox"] * wall
    result["postgres_cpu"] = usage["postgres"] * wall
    return result


def _run_child(ctx: Context, mode: str, url: str, sandbox: str, count: int) -> dict[str, Any]:
    return run_child(ctx, _CHILD, mode, url, sandbox, str(count))


def _ledger_check(sandbox: str, url: str, count: int) -> dict[str, int]:
    """Every order ``paid`` with exactly one succeeded charge at the sandbox, or raise."""
    import httpx
    import psycopg

    book = httpx.get(f"{sandbox}/ledger", timeout=60).json()
    charges: dict[str, int] = {}
    direct = 0
    for charge in book["charges"]:
        order_id = charge["metadata"].get("order_id", "")
        if charge["status"] != "succeeded":
            continue
        if order_id.startswith("baseline-"):
            direct += 1
        else:
            charges[order_id] = charges.get(order_id, 0) + 1
    with psycopg.connect(url) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall())
        paid = {r[0] for r in conn.execute("SELECT id FROM orders WHERE state = 'paid'")}
    wrong = sum(1 for o in paid if charges.get(o) != 1) + sum(1 for o in charges if o not in paid)
    check = {"paid": len(paid), "orders": sum(states.values()), "wrong": wrong, "direct": direct}
    if not (check["paid"] == check["orders"] == count and wrong == 0 and direct == count):
        raise RuntimeError(f"drain bench: the sandbox's ledger disagrees: {check}, {states}")
    return check


def run(ctx: Context, count: int = ORDERS) -> dict[str, Any]:
    url = bench_db_url()
    rounds: list[dict[str, Any]] = []
    for r in range(ctx.rounds):
        migrated_database(ctx)
        sandbox = start_sandbox(ctx, "drain-sandbox", ctx.workdir / f"drain-{r}.db")
        base = f"http://127.0.0.1:{sandbox.port}"
        try:
            _run_child(ctx, "seed", url, base, count)
            pg_execute("CHECKPOINT")
            # interleaved: both against the same sandbox in the same round; the drain goes
            # first, so the worker's sweep never meets the direct charges (which no order
            # owns: it would take them for orphans)
            drain = _measured(ctx, "drain", url, sandbox, count)
            direct = _measured(ctx, "direct", url, sandbox, count)
            check = _ledger_check(base, url, count)
        finally:
            sandbox.stop()
        ctx.log(
            f"drain round {r + 1}: {count / drain['wall']:.0f} orders/s "
            f"(direct {count / direct['wall']:.0f}/s), check {check}"
        )
        rounds.append({"drain": drain, "direct": direct, "check": check})
    return {"count": count, "rounds": rounds}


def render(results: dict[str, Any]) -> str:
    count, runs = results["count"], results["rounds"]
    rates = [count / r["drain"]["wall"] for r in runs]
    direct_rates = [count / r["direct"]["wall"] for r in runs]
    ratios = [d / b for d, b in zip(rates, direct_rates, strict=True)]
    concurrency = runs[0]["direct"]["concurrency"]
    lines = [
        f"## {TITLE}",
        "",
        f"{count} orders placed with a card while every provider's circuit was open, so "
        "each waits in `received`; then the provider is back (breaker still open, its "
        "cool-down over): the product's worker (`Worker.run`, every duty, default settings, "
        "PostgreSQL) runs until every order is `paid`. Direct: the same charges made with "
        f"the Stripe SDK straight to the sandbox at the same concurrency ({concurrency}), no "
        "orderguard, no database. Same sandbox process, same round (the drain first). "
        f"Median of {len(rates)} rounds.",
        "",
        "| | orders paid per second | ratio to direct |",
        "|---|---:|---:|",
        f"| orderguard worker draining the backlog | {median(rates):.0f} | {median(ratios):.2f}x |",
        f"| direct: the same charges, Stripe SDK | {median(direct_rates):.0f} | 1.00x |",
        "",
        f"Target: at least {TARGET:.2f}x the direct rate — "
        f"{'met' if median(ratios) >= TARGET else 'NOT met'} in this run.",
        "",
        f"Time to drain {count} orders: {median([r['drain']['wall'] for r in runs]):.1f} s "
        f"(median; direct {median([r['direct']['wall'] for r in runs]):.1f} s). Every round "
        f"checked, or the benchmark fails: all {count} orders ended `paid` with exactly one "
        "succeeded charge each at the sandbox, and every direct charge succeeded (against "
        "the sandbox's `GET /ledger`).",
        "",
        "CPU per order (median, ms; the PostgreSQL server's figure counts everyone using "
        "it): "
        + _cpu_line(runs, count, "drain", "worker")
        + "; direct: "
        + _cpu_line(runs, count, "direct", "client")
        + ". Each side is one process (the worker; the SDK client), so on a machine short "
        "of CPU the ratio follows the client's CPU per charge over the worker's CPU per "
        "order.",
        "",
        "Per round (worker / direct, orders per second): "
        + "; ".join(f"{d:.0f} / {b:.0f}" for d, b in zip(rates, direct_rates, strict=True))
        + ".",
    ]
    return "\n".join(lines)


def _cpu_line(runs: list[dict[str, Any]], count: int, key: str, name: str) -> str:
    """Milliseconds of CPU per order: the process itself, the sandbox, the PostgreSQL server
    (all of its processes: other users of the server count too)."""

    def ms(field: str) -> str:
        return f"{median([r[key][field] for r in runs]) * 1000 / count:.1f}"

    pg = ms("postgres_cpu")
    return f"{name} {ms('cpu')}, sandbox {ms('sandbox_cpu')}, PostgreSQL server {pg}"


def section(ctx: Context) -> str:
    results = run(ctx)
    (ctx.workdir / "drain.json").write_text(json.dumps(results))
    return render(results)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
