"""Benchmark: the janitor's active queries per second at each wallet, against the queries alone.

Per wallet (Alipay, WeChat Pay), ``N`` orders are left in ``payment_unknown`` with a wallet
attempt (``alipay_page`` / ``wechatpay_native``, CNY; PostgreSQL ``og_bench``) whose outcome
was lost, the attempt holding its wallet reference (``out_trade_no``). At the wallet's
sandbox (its own process, ``orderguard sandbox-provider --provider NAME``) each trade exists
(the shopper opened the cashier / scanned the code): half of them the shopper paid, the
other half were closed unpaid (``cancel_payment``, i.e. the wallet's close). Then the product's
janitor (``Janitor.run_once``, the worker's duty, default concurrency and lease) runs rounds
until none is left in ``payment_unknown``: each check is one active query by
``out_trade_no`` (``alipay.trade.query``; ``GET /v3/pay/transactions/out-trade-no/…``),
which settles the order ``paid`` or ``payment_failed``. Every order is checked against
the sandbox's ``GET /ledger`` afterwards (paid orders ⇔ paid trades, failed ⇔ closed).

Baseline, same round, same sandbox process: the same active queries (``retrieve_payment``
of every order's reference) through the same adapter as the registry builds it, the same
concurrency, without the database. The ratio is what the janitor's bookkeeping (claim and
read, lock, settle, timeline, outbox, release) costs on top of the wallet's answers.
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
    CpuSnapshot,
    bench_db_url,
    cpu_usage,
    free_port,
    median,
    migrated_database,
    pg_execute,
    pg_scalar,
    run_child,
)
from wallet_paid import PAID_STATES, start_wallet_sandbox, wallet_config

TITLE = "Janitor at the wallets: active queries per second against the queries alone"
WALLETS = ("alipay", "wechatpay")
METHOD = {"alipay": "alipay_page", "wechatpay": "wechatpay_native"}
ORDERS = 300
CONCURRENCY = 8  # the janitor's default
TARGET = 0.66  # issue 19: the ratio the Stripe janitor had (docs/benchmarks.md, issue 18's run)
CLOSED_STATES = {"alipay": {"TRADE_CLOSED"}, "wechatpay": {"CLOSED"}}

# The measured part runs in a child process of its own (`python bench/wallet_janitor.py
# MODE ...`), so the bench driver's own work never shares its event loop.
_CHILD = Path(__file__).resolve()


async def _seed(url: str, wallet: str, sandbox: str, count: int) -> None:
    """``count`` orders in ``payment_unknown``, each with its trade at the sandbox: every
    other one paid by the shopper, the rest closed unpaid."""
    from contextlib import ExitStack
    from datetime import UTC, datetime
    from urllib.parse import urlsplit

    import httpx

    from orderguard.bootstrap import configured_providers, open_storage, wire
    from orderguard.config import Settings
    from orderguard.domain.customer import Address, Customer
    from orderguard.domain.events import Cause
    from orderguard.domain.order import Order, OrderLine
    from orderguard.domain.settle import Outcome
    from orderguard.domain.states import AttemptState

    settings = Settings.load()  # the wallet's settings are in the environment
    storage = await open_storage(settings)
    resources = ExitStack()
    container = wire(settings, storage, configured_providers(settings, resources))
    provider = container.payments.providers.primary.provider
    customer = Customer(
        "ana@example.com", "Ana Silva", Address("Rua Augusta 1", "Lisboa", "1100-048", "PT"), None
    )
    gate = asyncio.Semaphore(16)
    try:
        async with httpx.AsyncClient(base_url=sandbox, timeout=60) as shop:

            async def one(i: int) -> None:
                now = datetime.now(UTC)
                order = Order.place(
                    currency="CNY",
                    lines=[OrderLine("TEE-M", "T-shirt", 2, 1999)],
                    customer=customer,
                    at=now,
                    merchant_reference=f"bench-wallet-janitor-{i}",
                )
                attempt = container.payments.prepare(order, METHOD[wallet], cause=Cause.API, at=now)
                assert attempt is not None and attempt.provider == wallet, attempt
                async with gate:
                    made = await container.payments.send(order, attempt)
                    assert made.state is AttemptState.ACTION_REQUIRED and made.provider_ref, made
                    ref, link = made.provider_ref, str(made.redirect_url)
                    if wallet == "alipay":  # the shopper opens the cashier and logs in
                        parts = urlsplit(link)
                        (await shop.get(f"{parts.path}?{parts.query}")).raise_for_status()
                        (await shop.post(f"/admin/trades/{ref}/login")).raise_for_status()
                        pay = f"/admin/trades/{ref}/pay"
                    else:  # the shopper scans the code
                        (
                            await shop.post("/sandbox/scan", json={"code_url": link})
                        ).raise_for_status()
                        pay = f"/sandbox/shopper/{ref}/pay"
                    if i % 2 == 0:
                        (await shop.post(pay)).raise_for_status()
                    else:
                        closed = await provider.cancel_payment(ref)  # closes the trade
                        assert closed.decline_code, closed
                lost = Outcome(
                    AttemptState.UNKNOWN,
                    provider_ref=ref,
                    reason="no answer within the time budget",
                )
                container.payments.settle(order, attempt.id, lost, cause=Cause.API, at=now)
                async with storage() as uow:
                    await uow.orders.add(order)
                    await uow.commit()

            await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await container.close()


async def _janitor(url: str) -> dict[str, Any]:
    """Run janitor rounds until nothing is left in ``payment_unknown``; time and count."""
    from dataclasses import replace

    from orderguard.bootstrap import open_sql
    from orderguard.config import Settings
    from orderguard.domain.states import OrderState

    settings = replace(Settings.load(), recheck_scale=1e-6)
    container = await open_sql(settings)
    rounds = checked = resolved = 0
    far = _far_future()
    try:
        await asyncio.sleep(0.05)  # every order's first wait (scaled) is over
        t0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            report = await container.janitor.run_once(owner="bench", limit=200)
            rounds += 1
            checked += report.checked
            resolved += report.resolved
            async with container.storage() as uow:
                left = await uow.orders.in_state(
                    OrderState.PAYMENT_UNKNOWN, updated_before=far, limit=1
                )
            if not left:
                break
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await container.close()
    return {"wall": wall, "cpu": cpu, "rounds": rounds, "checked": checked, "resolved": resolved}


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(9999, 1, 1, tzinfo=UTC)


async def _queries_alone(url: str, count: int) -> dict[str, Any]:
    """The janitor's active queries without the janitor: ``retrieve_payment`` of every
    order's reference through the same adapter, the same concurrency, no database."""
    from contextlib import ExitStack

    from orderguard.bootstrap import configured_providers
    from orderguard.config import Settings
    from orderguard.storage.connect import connect
    from orderguard.storage.database import transaction

    settings = Settings.load()
    resources = ExitStack()
    provider = configured_providers(settings, resources).primary.provider
    db = await connect(url, pool_size=2)
    async with transaction(db, write=False) as conn:
        rows = await conn.fetchall("SELECT provider_ref FROM payment_attempts")
    await db.close()
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: dict[str, int] = {}

    async def one(ref: str) -> None:
        async with gate:
            found = await provider.retrieve_payment(ref)
        outcomes[str(found.outcome)] = outcomes.get(str(found.outcome), 0) + 1

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(str(dict(r)["provider_ref"])) for r in rows[:count]))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await provider.aclose()
    resources.close()
    return {"wall": wall, "cpu": cpu, "calls": len(rows[:count]), "outcomes": outcomes}


def _child(mode: str, url: str, wallet: str, sandbox: str, count: int) -> None:
    work = {
        "seed": lambda: _seed(url, wallet, sandbox, count),
        "janitor": lambda: _janitor(url),
        "baseline": lambda: _queries_alone(url, count),
    }[mode]
    result = asyncio.run(work())
    print(json.dumps(result or {}))


def _ledger_check(wallet: str, sandbox: str, url: str) -> dict[str, int]:
    """Orders against the sandbox: each paid order's trade paid, each failed one's closed."""
    import httpx
    import psycopg

    book = httpx.get(f"{sandbox}/ledger", timeout=60).json()
    status = {
        str(t["out_trade_no"]): str(t.get("status") or t.get("trade_state")) for t in book["trades"]
    }
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.state, a.provider_ref FROM orders o JOIN payment_attempts a "
            "ON a.order_id = o.id"
        ).fetchall()
    wrong = 0
    states: dict[str, int] = {}
    for state, ref in rows:
        states[state] = states.get(state, 0) + 1
        expected = {"paid": PAID_STATES[wallet], "payment_failed": CLOSED_STATES[wallet]}
        if status.get(str(ref)) not in expected.get(state, set()):
            wrong += 1
    paid_trades = sum(1 for s in status.values() if s in PAID_STATES[wallet])
    return {
        "orders": len(rows),
        "paid": states.get("paid", 0),
        "failed": states.get("payment_failed", 0),
        "paid_trades": paid_trades,
        "wrong": wrong + abs(paid_trades - states.get("paid", 0)),
    }


def _wait_notifications(sandbox: str, seconds: float = 30.0) -> None:
    """Until the sandbox stopped sending notifications (WeChat Pay's go to a closed port
    here and are sent again for ~8 s): they must not run during the measurement."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = httpx.get(f"{sandbox}/ledger", timeout=60).json().get("notifications", [])
        if all(len(n.get("statuses", [])) >= 6 or n.get("delivered") for n in sent):
            return
        time.sleep(0.5)


def _measured(
    mode: str, ctx: Context, child: Path, url: str, wallet: str, base: str, count: str,
    env: dict[str, str], sandbox_pid: int,
) -> dict[str, Any]:  # fmt: skip
    """Run child ``mode``; its result plus the CPU seconds the sandbox spent meanwhile
    (the child's start-up included: small beside the measured part)."""
    transactions = _transactions()
    before = CpuSnapshot.take({"sandbox": sandbox_pid})
    result = run_child(ctx, child, mode, url, wallet, base, count, env=env)
    after = CpuSnapshot.take({"sandbox": sandbox_pid})
    usage = cpu_usage(before, after)
    result["sandbox_cpu"] = usage["sandbox"] * (after.at - before.at)
    result["machine_busy"] = usage["machine"]
    time.sleep(1.0)  # the child's backends report their counts as they exit
    result["transactions"] = _transactions() - transactions
    return result


def _transactions() -> int:
    """Transactions committed or rolled back in the bench database so far."""
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
        outcome: dict[str, Any] = {}
        for wallet in WALLETS:
            migrated_database(ctx)
            sandbox, ledger = start_wallet_sandbox(ctx, url, wallet, f"janitor-{r}")
            base = f"http://127.0.0.1:{sandbox.port}"
            env = wallet_config(ctx, url, wallet, sandbox.port, ledger)
            # nobody listens there: the seed's notifications are not delivered (Alipay's
            # are not sent at all without a notify URL)
            env["ORDERGUARD_WECHATPAY_NOTIFY_URL"] = f"http://127.0.0.1:{free_port()}/nobody"
            try:
                run_child(ctx, _CHILD, "seed", url, wallet, base, str(count), env=env)
                _wait_notifications(base)
                pg_execute("CHECKPOINT")
                # interleaved: baseline and janitor against the same sandbox in the same round
                args = (ctx, _CHILD, url, wallet, base, str(count), env, sandbox.pid)
                baseline = _measured("baseline", *args)
                janitor = _measured("janitor", *args)
                check = _ledger_check(wallet, base, url)
            finally:
                sandbox.stop()
            ctx.log(
                f"wallet janitor round {r + 1} {wallet}: "
                f"{janitor['checked'] / janitor['wall']:.0f} queries/s "
                f"(alone {baseline['calls'] / baseline['wall']:.0f}/s), check {check}"
            )
            outcome[wallet] = {"janitor": janitor, "baseline": baseline, "check": check}
        rounds.append(outcome)
    return {"count": count, "rounds": rounds}


def _rates(results: dict[str, Any], wallet: str) -> tuple[list[float], list[float]]:
    runs = [o[wallet] for o in results["rounds"]]
    janitor = [r["janitor"]["checked"] / r["janitor"]["wall"] for r in runs]
    alone = [r["baseline"]["calls"] / r["baseline"]["wall"] for r in runs]
    return janitor, alone


def _checks(results: dict[str, Any], wallet: str) -> str:
    found = [o[wallet]["check"] for o in results["rounds"]]
    return f"{wallet} " + ", ".join(
        f"{c['paid']} paid / {c['failed']} failed ({c['paid_trades']} paid trades, "
        f"{c['wrong']} wrong)"
        for c in found
    )


def render(ctx: Context, results: dict[str, Any]) -> str:
    count = results["count"]
    lines = [
        f"## {TITLE}",
        "",
        f"Measured by `{ctx.command}` on {ctx.started}. Per wallet, {count} orders left in "
        "`payment_unknown` with a wallet attempt whose outcome was lost (the attempt holds "
        "its `out_trade_no`); at the wallet's sandbox (its own process) half of the trades "
        "were paid by the shopper, the other half closed unpaid. The product's janitor "
        f"(`Janitor.run_once`, concurrency {CONCURRENCY}, PostgreSQL) resolves them, one "
        "active query per order (Alipay `alipay.trade.query`, WeChat Pay the query by "
        "`out_trade_no`), settling `paid` or `payment_failed`. Baseline: the same queries "
        "alone (`retrieve_payment` through the same adapter), same concurrency, same sandbox "
        f"process, same round, no database. Median of {len(results['rounds'])} rounds; the "
        f"target is the ratio the Stripe janitor has, ≥ {TARGET}.",
        "",
        "*Seeded with the reference.* An attempt whose create call lost its answer is "
        "recorded without the wallet's reference; the janitor then asks by the `out_trade_no` "
        "the shop chose (the wallet's profile computes it from the attempt), the same query. "
        "The seed stores it so that every check here is exactly one query.",
        "",
        "| wallet | janitor: queries/s | alone: queries/s | ratio | target ≥ 0.66 "
        "| janitor rounds | ledger check |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    cpu_rows = []
    for wallet in WALLETS:
        janitor, alone = _rates(results, wallet)
        ratios = [j / b for j, b in zip(janitor, alone, strict=True)]
        runs = [o[wallet] for o in results["rounds"]]
        right = all(
            r["check"]["wrong"] == 0
            and r["check"]["paid"] + r["check"]["failed"] == r["check"]["orders"] == count
            and r["janitor"]["checked"] == count
            for r in runs
        )
        met = median(ratios) >= TARGET
        lines.append(
            f"| {wallet} | {median(janitor):.0f} | {median(alone):.0f} "
            f"| **{median(ratios):.2f}x** | {'met' if met else '**NOT met**'} "
            f"| {', '.join(str(r['janitor']['rounds']) for r in runs)} "
            f"| {'all right' if right else '**WRONG**'} |"
        )

        def per_query(side: str, key: str, runs: list[dict[str, Any]] = runs) -> float:
            calls = "checked" if side == "janitor" else "calls"
            return median([1000 * r[side][key] / r[side][calls] for r in runs])

        cpu_rows.append(
            f"| {wallet} | {per_query('janitor', 'cpu'):.2f} "
            f"| {per_query('baseline', 'cpu'):.2f} "
            f"| {per_query('janitor', 'sandbox_cpu'):.2f} "
            f"| {per_query('baseline', 'sandbox_cpu'):.2f} "
            f"| {median([r['janitor']['machine_busy'] for r in runs]):.2f} "
            f"| {median([r['baseline']['machine_busy'] for r in runs]):.2f} |"
        )
    lines += [
        "",
        "CPU per query (ms, medians; the janitor's and the baseline's own process over the "
        "measured part; the sandbox process over the child's whole life), and how busy the "
        "machine was (cores of 2). PostgreSQL's CPU is not shown: the janitor's backends end "
        "with its process, before their CPU can be read, and the server serves the other "
        "users of this machine too.",
        "",
        "| wallet | janitor process | queries alone: process | sandbox, janitor run "
        "| sandbox, alone | machine busy, janitor run "
        "| machine busy, alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *cpu_rows,
        "",
        *_why(results),
    ]
    lines += [
        "",
        "Ledger check, every round: "
        + "; ".join(_checks(results, w) for w in WALLETS)
        + " (each order's state against its trade at the sandbox: `paid` ⇔ paid, "
        "`payment_failed` ⇔ closed; every order checked exactly once).",
        "",
        "Per round (janitor / alone, queries per second): "
        + "; ".join(
            f"{w} "
            + ", ".join(f"{j:.0f} / {b:.0f}" for j, b in zip(*_rates(results, w), strict=True))
            for w in WALLETS
        )
        + ".",
    ]
    return "\n".join(lines)


def _why(results: dict[str, Any]) -> list[str]:
    """What the figures say about the ratio, in words (computed, not written by hand)."""
    out = ["**Why the ratio is what it is** (from the figures above):", ""]
    for wallet in WALLETS:
        runs = [o[wallet] for o in results["rounds"]]
        janitor, alone = _rates(results, wallet)
        ratio = median([j / b for j, b in zip(janitor, alone, strict=True)])
        own = median([1000 * r["janitor"]["cpu"] / r["janitor"]["checked"] for r in runs])
        query = median([1000 * r["baseline"]["cpu"] / r["baseline"]["calls"] for r in runs])
        sandbox = median(
            [1000 * r["baseline"]["sandbox_cpu"] / r["baseline"]["calls"] for r in runs]
        )
        tx = median([r["janitor"]["transactions"] / r["janitor"]["checked"] for r in runs])
        out.append(
            f"- {wallet}: {ratio:.2f}x. A check costs the janitor's process {own:.2f} ms of CPU "
            f"where the query alone costs its process {query:.2f} ms (the same adapter: "
            f"signing, the HTTP round trip, verifying the answer), so the bookkeeping is "
            f"{own - query:.2f} ms per check in the janitor's process "
            f"({100 * (own - query) / own:.0f}% of its CPU; PostgreSQL's share "
            f"comes on top: not counted, see above); {tx:.2f} transactions per check (a round "
            f"claims {CONCURRENCY} orders at a time and reads them in the claim's transaction; "
            "the checks that end together are settled in one transaction, with their timeline, "
            "outbox and lease release in multi-row statements). The "
            f"sandbox spends {sandbox:.2f} ms per query. With every process sharing 2 cores, "
            f"the rates follow the CPU each side needs per query: "
            f"{query + sandbox:.2f} ms alone against at least {own + sandbox:.2f} ms with the "
            f"janitor, i.e. at most about {(query + sandbox) / (own + sandbox):.2f}x."
        )
    out += [
        "",
        "A wallet is asked one query per order (the Stripe janitor's baseline makes 1.5 calls "
        "per order), so the janitor's fixed cost per check is a larger share here. Until the "
        "janitor claimed and read its orders in one transaction and settled the checks that "
        "end together in one, a check cost 2.7 transactions and about 4 ms of the janitor "
        "process's CPU besides the query (0.31x at both wallets). What is left in a CPU "
        "profile of the janitor's process (`cProfile` with `time.process_time`) is mostly "
        "the query itself (signing, HTTP, verifying), which the baseline makes too, and "
        "PostgreSQL's CPU for the claims and settles shares the same 2 cores.",
    ]
    return out


def section(ctx: Context) -> str:
    results = run(ctx)
    (ctx.workdir / "wallet_janitor.json").write_text(json.dumps(results))
    return render(ctx, results)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
