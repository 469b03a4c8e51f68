"""Benchmark: paid orders per second through each wallet's sandbox, next to Stripe's.

For each wallet (Alipay, WeChat Pay) the real ``orderguard serve`` (PostgreSQL ``og_bench``)
is configured for that wallet's sandbox, served in its own process
(``orderguard sandbox-provider --provider NAME``, the settings from ``--print-config``, its
notifications sent to serve's ``/v1/webhooks/NAME``). Closed-loop shoppers
(``bench/_wallet_shoppers.py``) place an order with the wallet's method, pay at the
sandbox as a shopper does, and poll the order until it reads ``paid``: a wallet payment
is ``action_required`` until the shopper pays outside the shop, and only the wallet's
notification makes it ``paid``. The Stripe figure of the same round is ``bench/paid.py``'s
``external`` run (a card charge confirmed inside ``POST /v1/orders``: no shopper step, no
notification needed).

After every run every order in PostgreSQL is checked against the sandbox's ``GET /ledger``:
each paid order has exactly one paid trade (``out_trade_no`` = its attempt's reference)
for its amount, no paid trade lacks a paid order, and every order the shoppers saw ``paid``
is among them.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import paid
from _common import (
    BENCH,
    PYTHON,
    VENV_BIN,
    Context,
    Server,
    free_port,
    median,
    migrated_database,
    pg_execute,
    start_server,
)

TITLE = "Paid orders through the wallets' sandboxes (Alipay, WeChat Pay), next to Stripe's"
WALLETS = ("alipay", "wechatpay")
MODES = ("stripe", *WALLETS)
LABEL = {
    "stripe": "Stripe sandbox (card, `pm_card_visa`)",
    "alipay": "Alipay sandbox (`alipay_page`)",
    "wechatpay": "WeChat Pay sandbox (`wechatpay_native`)",
}
#: Trade states at each sandbox that mean the shopper's money was taken.
PAID_STATES = {"alipay": {"TRADE_SUCCESS", "TRADE_FINISHED"}, "wechatpay": {"SUCCESS"}}
#: What a delivered notification of a payment says (Alipay's status, WeChat Pay's event).
NOTIFIED = {"TRADE_SUCCESS", "TRANSACTION.SUCCESS"}
TABLES = "orders, order_lines, payment_attempts, timeline, outbox, idempotency_keys"


def wallet_config(ctx: Context, url: str, wallet: str, port: int, ledger: str) -> dict[str, str]:
    """``orderguard sandbox-provider --provider WALLET --print-config``'s settings."""
    done = subprocess.run(
        [str(VENV_BIN / "orderguard"), "sandbox-provider", f"--provider={wallet}",
         "--print-config", "--host=127.0.0.1", f"--port={port}", f"--db={ledger}"],
        env=ctx.env(url), capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if not found:
        raise RuntimeError(f"--print-config gave nothing for {wallet}: {done.stderr[-500:]}")
    return found


def start_wallet_sandbox(ctx: Context, url: str, wallet: str, tag: str) -> tuple[Server, str]:
    """The wallet's sandbox in its own process; and its ledger path (keys beside it)."""
    folder = ctx.workdir / f"{tag}-{wallet}"
    folder.mkdir(parents=True, exist_ok=True)
    ledger = str(folder / "ledger.db")
    port = free_port()
    argv = [
        str(VENV_BIN / "orderguard"), "sandbox-provider", f"--provider={wallet}",
        "--host=127.0.0.1", f"--port={port}", f"--db={ledger}",
    ]  # fmt: skip
    sandbox = start_server(
        f"{tag}-{wallet}-sandbox", argv, ctx.env(url), ctx.workdir, port, health_path="/ledger"
    )
    return sandbox, ledger


def _get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as answer:
        return json.loads(answer.read())


def _measure(
    ctx: Context, url: str, wallet: str, tag: str, *, shoppers: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Fresh tables and processes, the shoppers, then the ledger check."""
    pg_execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", url)
    pg_execute("CHECKPOINT")
    sandbox, ledger = start_wallet_sandbox(ctx, url, wallet, tag)
    server: Server | None = None
    try:
        env = ctx.env(url)
        port = free_port()
        env.update(wallet_config(ctx, url, wallet, sandbox.port, ledger))
        env[f"ORDERGUARD_{wallet.upper()}_NOTIFY_URL"] = (
            f"http://127.0.0.1:{port}/v1/webhooks/{wallet}"
        )
        env["ORDERGUARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        argv = [str(VENV_BIN / "orderguard"), "serve", "--host=127.0.0.1", f"--port={port}"]
        server = start_server(f"serve-{tag}-{wallet}", argv, env, ctx.workdir, port)
        done = subprocess.run(
            [PYTHON, str(BENCH / "_wallet_shoppers.py"), f"--wallet={wallet}",
             f"--port={port}", f"--sandbox-port={sandbox.port}", f"--shoppers={shoppers}",
             f"--warmup={warmup}", f"--duration={duration}",
             f"--watch=server={server.pid}", f"--watch=sandbox={sandbox.pid}"],
            capture_output=True, text=True, timeout=warmup + duration + 120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"wallet shoppers failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        for key in ("p50", "p95", "p99", "max", "polls_per_order"):  # null when none was paid
            result[key] = float("nan") if result[key] is None else result[key]
        for proc in (server, sandbox):
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} died: {proc.log.read_text()[-2000:]}")
        cpu = result["cpu"]
        cpu["other"] = (
            cpu["machine"] - cpu["server"] - cpu["sandbox"] - cpu["postgres"] - cpu["loadgen"]
        )
        result["check"] = check(url, wallet, _settled_ledger(sandbox.port), result)
        result.pop("paid_ids")
    finally:
        if server is not None:
            server.stop()
        sandbox.stop()
    return result


def _settled_ledger(port: int, seconds: float = 10.0) -> Any:
    """The sandbox's ledger once every notification is delivered (or ``seconds`` passed): a
    delivery is marked when serve's answer has been read, a moment after the shopper may
    have seen ``paid``."""
    deadline = time.monotonic() + seconds
    while True:
        book = _get_json(port, "/ledger")
        pending = [n for n in book.get("notifications", []) if not n.get("delivered")]
        if not pending or time.monotonic() > deadline:
            return book
        time.sleep(0.2)


def check(url: str, wallet: str, book: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Every order of the run against the wallet sandbox's ledger (see the module doc)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            b"SELECT o.id, o.state, o.amount_total, a.provider_ref FROM orders o "
            b"LEFT JOIN payment_attempts a ON a.order_id = o.id"
        ).fetchall()
    trades: dict[str, list[dict[str, Any]]] = {}
    for trade in book["trades"]:
        status = trade.get("status") or trade.get("trade_state")
        if status in PAID_STATES[wallet]:
            trades.setdefault(str(trade["out_trade_no"]), []).append(trade)
    by_state: dict[str, int] = {}
    problems: list[str] = []
    paid_refs = set()
    orders: dict[str, str] = {}
    for order_id, state, amount, ref in rows:
        if order_id in orders:
            problems.append(f"{order_id} has more than one attempt")
        orders[order_id] = str(state)
        by_state[str(state)] = by_state.get(str(state), 0) + 1
        found = trades.get(str(ref), [])
        if state == "paid":
            paid_refs.add(str(ref))
            fen = [t.get("total_fen", (t.get("amount") or {}).get("total")) for t in found]
            if len(found) != 1 or fen != [amount]:
                problems.append(f"{order_id} paid with {len(found)} paid trades ({fen}, {amount})")
        elif found:
            problems.append(f"{order_id} is {state} but its trade was paid")
    orphans = [ref for ref in trades if ref not in paid_refs]
    if orphans:
        problems.append(f"{len(orphans)} paid trades without a paid order")
    unseen = [o for o in result["paid_ids"] if orders.get(o) != "paid"]
    if unseen:
        problems.append(f"{len(unseen)} orders seen paid are not paid in the database")
    notified = {
        str(n.get("out_trade_no"))
        for n in book.get("notifications", [])
        if n.get("delivered") and n.get("trade_status", n.get("event_type")) in NOTIFIED
    }
    silent = [ref for ref in paid_refs if ref not in notified]
    if silent:
        problems.append(f"{len(silent)} paid orders without a delivered payment notification")
    delivered = sum(1 for n in book.get("notifications", []) if n.get("delivered"))
    return {
        "orders": len(orders),
        "by_state": dict(sorted(by_state.items())),
        "paid_trades": sum(len(t) for t in trades.values()),
        "paid_orders": len(paid_refs),
        "notifications_delivered": delivered,
        "seen_paid": len(result["paid_ids"]),
        "problems": problems[:20],
        "problem_count": len(problems),
    }


def run(ctx: Context) -> dict[str, Any]:
    """Interleaved rounds: Stripe, Alipay, WeChat Pay, Stripe, ..."""
    url = migrated_database(ctx)
    rounds: list[dict[str, Any]] = []
    for number in range(1, ctx.rounds + 1):
        outcome: dict[str, Any] = {}
        for mode in MODES:
            ctx.log(f"wallet_paid: round {number}/{ctx.rounds}, {mode}, {ctx.connections} at once")
            tag = f"wallet-{number}"
            if mode == "stripe":
                outcome[mode] = paid._measure(
                    ctx, url, "external", f"{tag}-stripe", connections=ctx.connections,
                    warmup=ctx.warmup, duration=ctx.duration,
                )  # fmt: skip
                outcome[mode]["check"]["seen_paid"] = outcome[mode]["ok"]
            else:
                outcome[mode] = _measure(
                    ctx, url, mode, tag, shoppers=ctx.connections, warmup=ctx.warmup,
                    duration=ctx.duration,
                )  # fmt: skip
            r = outcome[mode]
            ctx.log(
                f"    {r['rps']:7.1f} paid/s  p50 {r['p50']:6.1f} ms  errors {r['errors']}  "
                f"server {r['cpu']['server']:.2f} sandbox {r['cpu']['sandbox']:.2f} cores  "
                f"check: {r['check']['problem_count']} problems"
            )
        rounds.append(outcome)
    return {"rounds": rounds}


def _med(results: dict[str, Any], mode: str, *path: str) -> float:
    values = []
    for outcome in results["rounds"]:
        value: Any = outcome[mode]
        for key in path:
            value = value[key]
        values.append(float(value))
    return median(values)


def render(ctx: Context, results: dict[str, Any], command: str, when: str) -> str:
    rounds = results["rounds"]
    stripe = _med(results, "stripe", "rps")
    out = [
        f"## {TITLE}",
        "",
        f"Measured by `{command}` on {when}. {ctx.connections} shoppers (closed loop) per run, "
        f"{len(rounds)} interleaved rounds (Stripe, Alipay, WeChat Pay, Stripe, ...), each "
        f"run {ctx.warmup:g} s warm-up then {ctx.duration:g} s measured, from scratch "
        "(tables truncated, CHECKPOINT, a fresh sandbox process, a fresh serve configured for "
        "that provider alone); medians over rounds.",
        "",
        "**What each figure includes.** A *Stripe* paid order is one `POST /v1/orders` with "
        "`pm_card_visa`: serve charges the sandbox inside the request and answers `paid` "
        "(the load generator of the section above). A *wallet* paid order cannot be paid "
        "inside the request: the shopper pays outside the shop. Here it is the `POST "
        "/v1/orders` answered `action_required`, **plus** the simulated shopper at the "
        "sandbox (Alipay: open the cashier URL, log in, pay — 3 requests; WeChat Pay: scan "
        "the code, pay — 2 requests), **plus** the sandbox's signed notification to serve "
        "(verified, then the order settled `paid` in its own transaction), **plus** the "
        "shopper's polls of `GET /v1/orders/{id}` until it reads `paid` (counted when seen). "
        "So a wallet paid order costs serve at least three requests (order, notification, "
        "poll) where a Stripe one costs one, and the ratio below is the price of the wallet "
        "flow, not of a slower adapter.",
        "",
        "| provider | paid orders/s | / Stripe | p50 ms | p95 ms | p99 ms | errors "
        "| polls per order | server CPU (cores) | server CPU ms/order | sandbox CPU (cores) "
        "| sandbox CPU ms/order | postgres CPU (cores) | shoppers' CPU (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        rps = _med(results, mode, "rps")
        server = _med(results, mode, "cpu", "server")
        sandbox = _med(results, mode, "cpu", "sandbox")
        polls = "-" if mode == "stripe" else f"{_med(results, mode, 'polls_per_order'):.1f}"
        out.append(
            f"| {LABEL[mode]} | **{rps:,.1f}** | {rps / stripe:.2f} "
            f"| {_med(results, mode, 'p50'):.1f} | {_med(results, mode, 'p95'):.1f} "
            f"| {_med(results, mode, 'p99'):.1f} "
            f"| {sum(o[mode]['errors'] for o in rounds)} | {polls} | {server:.2f} "
            f"| {1000 * server / rps:.2f} | {sandbox:.2f} | {1000 * sandbox / rps:.2f} "
            f"| {_med(results, mode, 'cpu', 'postgres'):.2f} "
            f"| {_med(results, mode, 'cpu', 'loadgen'):.2f} |"
        )
    out.append("")
    for mode in WALLETS:
        per_round = [o[mode]["rps"] / o["stripe"]["rps"] for o in rounds]
        out.append(
            f"- **{LABEL[mode]} / Stripe** (same round): "
            + ", ".join(f"{r:.2f}" for r in per_round)
        )
    out.append("")
    orders = sum(o[m]["check"]["orders"] for o in rounds for m in MODES)
    seen = sum(o[m]["check"]["seen_paid"] for o in rounds for m in MODES)
    problems = [f"round {n} {m}: {p}" for n, o in enumerate(rounds, 1) for m in MODES
                for p in o[m]["check"]["problems"]]  # fmt: skip
    states: dict[str, int] = {}
    for o in rounds:
        for m in MODES:
            for state, count in o[m]["check"]["by_state"].items():
                states[state] = states.get(state, 0) + count
    delivered = sum(
        o[m]["check"].get("notifications_delivered", 0) for o in rounds for m in WALLETS
    )
    wallet_paid = sum(o[m]["check"]["paid_orders"] for o in rounds for m in WALLETS)
    out += [
        "**Cross-check against the providers** (after every run, PostgreSQL against the "
        "sandbox's `GET /ledger`):",
        "",
        f"- {orders:,} orders in all runs (warm-up included; {seen:,} counted as paid in the "
        "measured windows), by state: "
        + ", ".join(f"{s} {n:,}" for s, n in sorted(states.items()))
        + f"; of them {wallet_paid:,} paid through a wallet, with {delivered:,} payment "
        "notifications delivered to serve; "
        + (
            "**every paid order has exactly one paid trade (charge) for its amount, no paid "
            "trade lacks a paid order, every order seen paid is paid in the database, every "
            "wallet order paid had its payment notification delivered**"
            if not problems
            else f"**{len(problems)} problems**: " + "; ".join(problems[:5])
        ),
        "",
        "<details><summary>Every run</summary>",
        "",
        "| round | provider | paid/s | p50 | p99 ms | errors | server | sandbox | postgres "
        "| shoppers | machine | other | steal |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, outcome in enumerate(rounds, 1):
        for mode in MODES:
            r, c = outcome[mode], outcome[mode]["cpu"]
            out.append(
                f"| {number} | {mode} | {r['rps']:,.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
                f"| {r['errors']} | {c['server']:.2f} | {c['sandbox']:.2f} "
                f"| {c['postgres']:.2f} | {c['loadgen']:.2f} | {c['machine']:.2f} "
                f"| {c['other']:.2f} | {c['steal']:.2f} |"
            )
    out += ["", "</details>", ""]
    return "\n".join(out)


def section(ctx: Context) -> str:
    """Run the benchmark and return its markdown section."""
    results = run(ctx)
    (ctx.workdir / "wallet_paid.json").write_text(json.dumps(results, default=vars, indent=1))
    return render(ctx, results, ctx.command, ctx.started)
