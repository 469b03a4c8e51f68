"""Benchmark: paid orders end to end, ``POST /v1/orders`` with a card, sandbox at zero latency.

Every request places an order with ``"payment": {"method": "pm_card_visa"}``: the real
``orderguard serve`` (PostgreSQL ``og_bench``, migrated first) stores the order and its
payment attempt, commits, charges the provider, settles and answers 201 with the order
``paid``. The provider is the sandbox with the ``none`` fault profile (no latency, no faults),
in three variants:

- ``external`` (the headline): a separate ``orderguard sandbox-provider`` process, serve
  configured with ``ORDERGUARD_STRIPE_API_KEY``/``ORDERGUARD_STRIPE_BASE_URL`` pointing at it,
  as a real provider sits (another machine; here it competes for the same cores); it sends
  no webhooks;
- ``webhooks``: the same, the sandbox also sending each charge's events to serve's
  ``/v1/webhooks/stripe``, signed with the secret serve is configured with (three per card
  charge, as a Stripe account subscribed to them does). The sandbox delivers at most 8 at
  once, so under load they lag the orders: after the load, the run waits until
  ``webhook_events`` holds as many processed rows as the sandbox's ledger holds events, and
  its "all in" figure is serve's CPU time (``/proc``, user + system) from the start of the
  load (warm-up included) until then, divided by the paid orders in the database;
- ``inprocess``: serve's default in-process sandbox (``ORDERGUARD_SANDBOX_FAULTS=none``, its
  ledger in the scratch directory), a thread inside the server process.

Every run starts from scratch: tables truncated, a CHECKPOINT, a fresh sandbox ledger, fresh
processes. The load generator (``bench/_loadgen.py``) counts only 201 answers whose order is
``paid``; after each run every order in PostgreSQL is checked against the sandbox's
``GET /ledger`` (exactly one succeeded charge per paid order, none without one), and a sample
of the answers against the charge itself (intent, amount). The ratio to intake is taken from
the intake section of the same ``bench/run.py`` invocation (``intake.json`` in the scratch
directory), and round by round from ``unpaid``: the headline's setup and load without a
payment, run first in each round. ``section(ctx)`` returns the markdown section for
docs/benchmarks.md.
``bench/paid_allin.py`` runs one variant alone and prints its all-in figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from typing import Any

from _common import (
    BENCH,
    PYTHON,
    VENV_BIN,
    Context,
    CpuSnapshot,
    Server,
    bench_db_url,
    cpu_usage,
    free_port,
    listening_ports,
    median,
    pg_execute,
    pg_scalar,
    proc_counters,
    proc_cpu_seconds,
    recreate_database,
    start_sandbox,
    start_server,
)

TITLE = "Paid orders end to end: POST /v1/orders with a card, sandbox provider at zero latency"
MODES = ("external", "webhooks", "inprocess")
#: Run in every round just before the others: the headline's setup (serve pointed at a
#: sandbox in its own process), the same load without a payment. The paid variants are
#: compared with it round by round, as well as with the intake section's median, which is
#: measured minutes earlier on a machine whose speed drifts.
UNPAID = "unpaid"
#: The variants also run at one connection (the webhooks one only in the rounds).
SINGLE_MODES = ("external", "inprocess")
LABEL = {
    "external": "paid, sandbox in its own process",
    "webhooks": "paid, sandbox in its own process, sending its webhooks to serve",
    "inprocess": "paid, sandbox inside serve (default)",
    UNPAID: "no payment, the headline's setup",
}
METHOD = "pm_card_visa"
API_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench"
#: Webhooks the sandbox sends for one succeeded card charge.
EVENTS_PER_CHARGE = 3
TABLES = "orders, order_lines, payment_attempts, timeline, outbox, idempotency_keys, webhook_events"
SAMPLE = 200
#: Seconds a run waits, after its load, for serve to process the sandbox's webhooks.
DRAIN_TIMEOUT = 120.0
#: Targets of issue 20: paid orders/s over intake's at least this ...
TARGET_RATIO = 0.5
#: ... and serve's CPU per paid order over an unpaid one's at most this.
TARGET_CPU = 2.0


# --------------------------------------------------------------------------- processes


class Setup:
    """One run's processes: serve, and (``external``, ``webhooks``) the sandbox provider
    (``webhooks``: sending its events to serve). Without ``worker``, serve runs no worker
    (``--no-worker``: nothing but the requests touches the database); ``timeout``: seconds
    each process is given to answer."""

    def __init__(
        self,
        ctx: Context,
        url: str,
        mode: str,
        tag: str,
        *,
        worker: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.mode = mode
        self.sandbox: Server | None = None
        self.server: Server | None = None
        env = ctx.env(url)
        ledger = ctx.workdir / f"paid-{tag}-ledger.db"
        port = free_port()
        try:
            if mode in ("external", "webhooks", UNPAID):
                hooks = None
                if mode == "webhooks":
                    hooks = (f"http://127.0.0.1:{port}/v1/webhooks/stripe", WEBHOOK_SECRET)
                    env["ORDERGUARD_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
                self.sandbox = start_sandbox(
                    ctx, f"sandbox-{tag}", ledger, webhooks=hooks, timeout=timeout
                )
                env["ORDERGUARD_STRIPE_API_KEY"] = API_KEY
                env["ORDERGUARD_STRIPE_BASE_URL"] = f"http://127.0.0.1:{self.sandbox.port}"
            else:
                env["ORDERGUARD_SANDBOX_FAULTS"] = "none"
                env["ORDERGUARD_SANDBOX_DB"] = str(ledger)
            env["ORDERGUARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            argv = [
                str(VENV_BIN / "orderguard"),
                "serve",
                "--processes=1",
                "--host=127.0.0.1",
                f"--port={port}",
            ] + ([] if worker else ["--no-worker"])
            self.server = start_server(
                f"serve-{tag}", argv, env, ctx.workdir, port, timeout=timeout
            )
        except BaseException:
            self.stop()
            raise

    @property
    def sandbox_port(self) -> int:
        assert self.server is not None
        if self.sandbox is not None:
            return self.sandbox.port
        others = [p for p in listening_ports(self.server.pid) if p != self.server.port]
        if len(others) != 1:
            raise RuntimeError(f"cannot find the in-process sandbox's port among {others}")
        return others[0]

    def pids(self) -> dict[str, int]:
        assert self.server is not None
        found = {"server": self.server.pid}
        if self.sandbox is not None:
            found["sandbox"] = self.sandbox.pid
        return found

    def alive(self) -> None:
        for proc in (self.server, self.sandbox):
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} died: {proc.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in (self.server, self.sandbox):
            if proc is not None:
                proc.stop()


def _reset(url: str) -> None:
    pg_execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", url)
    pg_execute("CHECKPOINT")


def _get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as answer:
        return json.loads(answer.read())


# --------------------------------------------------------------------------- one run


def _measure(
    ctx: Context,
    url: str,
    mode: str,
    tag: str,
    *,
    connections: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """Fresh processes, load, then the oracle check; returns the load generator's result,
    with ``allin`` (see ``_all_in``)."""
    _reset(url)
    setup = Setup(ctx, url, mode, tag)
    try:
        assert setup.server is not None
        counters_before = {name: proc_counters(pid) for name, pid in setup.pids().items()}
        started, cpu_before = time.monotonic(), _cpu_seconds(setup.server.pid)
        argv = [
            PYTHON,
            str(BENCH / "_loadgen.py"),
            f"--port={setup.server.port}",
            f"--connections={connections}",
            f"--warmup={warmup}",
            f"--duration={duration}",
            f"--watch-threads=server={setup.server.pid}",
        ] + [f"--watch={name}={pid}" for name, pid in setup.pids().items()]
        if mode != UNPAID:
            argv += [f"--payment={METHOD}", "--expect-state=paid", f"--sample={SAMPLE}"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=warmup + duration + 60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        setup.alive()
        ledger = _get_json(setup.sandbox_port, "/ledger")
        result["allin"] = _all_in(
            url, setup.server.pid, mode, ledger, started=started, cpu_before=cpu_before
        )
        counters_after = {name: proc_counters(pid) for name, pid in setup.pids().items()}
        result["counters"] = {
            name: {k: v - counters_before[name].get(k, 0) for k, v in after.items()}
            for name, after in counters_after.items()
        }
        cpu = result["cpu"]
        cpu.setdefault("sandbox", 0.0)
        cpu["server.threads"] = sum(v for k, v in cpu.items() if k.startswith("server.thread"))
        cpu["other"] = (
            cpu["machine"] - cpu["server"] - cpu["sandbox"] - cpu["postgres"] - cpu["loadgen"]
        )
        result["check"] = _check(url, ledger, result.get("sample", []))
        result.pop("sample", None)
    finally:
        setup.stop()
    return result


def _cpu_seconds(pid: int) -> float:
    seconds = proc_cpu_seconds(pid)
    if seconds is None:
        raise RuntimeError(f"process {pid} is gone")
    return seconds


def _all_in(
    url: str,
    server_pid: int,
    mode: str,
    ledger: dict[str, Any],
    *,
    started: float,
    cpu_before: float,
) -> dict[str, Any]:
    """Serve's CPU time from ``started`` (before the load, warm-up included) until every
    webhook the sandbox created (the events in its ``ledger``, read after the load: a
    charge's events are committed with it) is stored processed in ``webhook_events``
    (``webhooks``; the other variants send none, so until now), and the paid orders in
    the database; raises if they are not processed within ``DRAIN_TIMEOUT``."""
    loaded = time.monotonic()
    events = len(ledger.get("events", [])) if mode == "webhooks" else 0
    processed = 0
    while events:
        processed = int(pg_scalar("SELECT COUNT(processed_at) FROM webhook_events", url))
        if processed >= events:
            break
        if time.monotonic() - loaded > DRAIN_TIMEOUT:
            received = pg_scalar("SELECT COUNT(*) FROM webhook_events", url)
            raise RuntimeError(
                f"{processed} of the sandbox's {events} webhooks processed ({received} "
                f"received) {DRAIN_TIMEOUT:g} s after the load"
            )
        time.sleep(0.2)
    cpu = _cpu_seconds(server_pid) - cpu_before
    ended = time.monotonic()
    paid = int(pg_scalar("SELECT COUNT(*) FROM orders WHERE state = 'paid'", url))
    return {
        "server_cpu": cpu,
        "seconds": ended - started,
        "drain_seconds": ended - loaded,
        "paid_orders": paid,
        "events": events,
        "processed": processed,
        "ms_per_order": 1000 * cpu / paid if paid else float("nan"),
    }


def _check(url: str, ledger: dict[str, Any], sample: list[dict[str, Any]]) -> dict[str, Any]:
    """Every order of the run against the sandbox's ledger, and the sampled answers in detail."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(b"SELECT id, state, amount_total FROM orders").fetchall()
    orders = {order_id: (str(state), amount) for order_id, state, amount in rows}
    charges: dict[str, list[dict[str, Any]]] = {}
    for charge in ledger["charges"]:
        order_id = (charge.get("metadata") or {}).get("order_id", "?")
        charges.setdefault(order_id, []).append(charge)
    intents = {i["id"]: i for i in ledger["payment_intents"]}
    by_state: dict[str, int] = {}
    problems: list[str] = []
    for order_id, (state, _amount) in orders.items():
        by_state[state] = by_state.get(state, 0) + 1
        ok = [c for c in charges.get(order_id, []) if c["status"] == "succeeded"]
        if state == "paid" and len(ok) != 1:
            problems.append(f"{order_id} paid with {len(ok)} succeeded charges")
        if state != "paid" and ok:
            problems.append(f"{order_id} {state} but charged {len(ok)} times")
    orphans = [o for o in charges if o not in orders]
    if orphans:
        problems.append(f"{len(orphans)} orders charged but not in the database")
    sampled_ok = 0
    for kept in sample:
        attempt = kept.get("attempt") or {}
        found = [c for c in charges.get(str(kept.get("id")), []) if c["status"] == "succeeded"]
        intent = intents.get(str(attempt.get("provider_ref")))
        if (
            kept.get("state") == "paid"
            and kept.get("attempts") == 1
            and attempt.get("state") == "succeeded"
            and len(found) == 1
            and found[0]["payment_intent"] == attempt.get("provider_ref")
            and found[0]["amount"] == kept.get("amount") == attempt.get("amount")
            and intent is not None
            and intent["status"] == "succeeded"
        ):
            sampled_ok += 1
        else:
            problems.append(f"sampled answer {kept.get('id')} does not match the ledger")
    return {
        "orders": len(orders),
        "by_state": dict(sorted(by_state.items())),
        "succeeded_charges": sum(
            1 for cs in charges.values() for c in cs if c["status"] == "succeeded"
        ),
        "charges": sum(len(cs) for cs in charges.values()),
        "intents": len(intents),
        "sampled": len(sample),
        "sampled_ok": sampled_ok,
        "problems": problems[:20],
        "problem_count": len(problems),
    }


# --------------------------------------------------------------------------- provider alone


def _provider_alone(ctx: Context) -> dict[str, Any]:
    """The sandbox by itself: sequential charges from one client, service time and CPU."""
    import httpx

    sandbox = start_sandbox(ctx, "sandbox-alone", ctx.workdir / "paid-alone-ledger.db")
    port = sandbox.port
    headers = {"Authorization": f"Bearer {API_KEY}"}
    form = {
        "amount": "3998",
        "currency": "eur",
        "payment_method": METHOD,
        "confirm": "true",
        "return_url": "http://127.0.0.1/return",
        "metadata[order_id]": "ord_bench",
        "metadata[attempt_id]": "pay_bench",
    }
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:

            def charge() -> float:
                key = {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
                t0 = time.perf_counter()
                answer = client.post("/v1/payment_intents", data=form, headers=key)
                spent = time.perf_counter() - t0
                if answer.status_code != 200 or answer.json()["status"] != "succeeded":
                    raise RuntimeError(f"sandbox charge failed: {answer.text[:300]}")
                return spent

            for _ in range(50):
                charge()
            before = CpuSnapshot.take({"sandbox": sandbox.pid})
            counters = proc_counters(sandbox.pid)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3.0:
                latencies.append(1000 * charge())
            after = CpuSnapshot.take({"sandbox": sandbox.pid})
            delta = {k: v - counters.get(k, 0) for k, v in proc_counters(sandbox.pid).items()}
    finally:
        sandbox.stop()
    cpu = cpu_usage(before, after)
    wall = after.at - before.at
    ordered = sorted(latencies)
    return {
        "charges": len(latencies),
        "rate": len(latencies) / wall,
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "sandbox_ms": 1000 * cpu["sandbox"] * wall / len(latencies),
        "counters": delta,
    }


# --------------------------------------------------------------------------- the runs


def run(ctx: Context) -> dict[str, Any]:
    """Measure; returns raw results (see ``render``)."""
    url = bench_db_url()
    recreate_database()
    subprocess.run(
        [str(VENV_BIN / "orderguard"), "migrate"],
        env=ctx.env(url),
        cwd=ctx.workdir,
        check=True,
        capture_output=True,
    )
    results: dict[str, Any] = {"rounds": [], "single": {}}
    ctx.log("paid: the sandbox alone, one client, sequential charges")
    results["alone"] = _provider_alone(ctx)
    for mode in SINGLE_MODES:
        ctx.log(f"paid: {mode}, 1 connection")
        results["single"][mode] = _measure(
            ctx, url, mode, f"{mode}-single", connections=1, warmup=1.0, duration=3.0
        )
        _log(ctx, results["single"][mode], mode)
    for number in range(1, ctx.rounds + 1):
        outcome: dict[str, Any] = {}
        for mode in (UNPAID, *MODES):
            ctx.log(f"paid: round {number}/{ctx.rounds}, {mode}, {ctx.connections} connections")
            outcome[mode] = _measure(
                ctx,
                url,
                mode,
                f"{mode}-{number}",
                connections=ctx.connections,
                warmup=ctx.warmup,
                duration=ctx.duration,
            )
            _log(ctx, outcome[mode], mode)
        results["rounds"].append(outcome)
    return results


def _log(ctx: Context, r: dict[str, Any], mode: str) -> None:
    cpu = r["cpu"]
    unit = "orders/s" if mode == UNPAID else "paid/s"
    ctx.log(
        f"    {r['rps']:8.1f} {unit}  p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f} ms  "
        f"errors {r['errors']}  server {cpu['server']:.2f} sandbox {cpu['sandbox']:.2f} "
        f"postgres {cpu['postgres']:.2f} machine {cpu['machine']:.2f} cores  "
        f"check: {r['check']['problem_count']} problems  all in "
        f"{r['allin']['ms_per_order']:.2f} ms/order ({r['allin']['processed']} webhooks)"
    )


# --------------------------------------------------------------------------- rendering


def _med(results: dict[str, Any], mode: str, *path: str) -> float:
    values = []
    for outcome in results["rounds"]:
        value: Any = outcome[mode]
        for key in path:
            value = value[key]
        values.append(float(value))
    return median(values)


def _intake(ctx: Context) -> dict[str, Any] | None:
    """The intake section's results of this invocation, if it ran."""
    path = ctx.workdir / "intake.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _errors(r: dict[str, Any]) -> str:
    parts = []
    if r.get("bad_state"):
        states = ", ".join(f"{s} {n}" for s, n in r.get("states", {}).items() if s != "paid")
        parts.append(f"{r['bad_state']} answered 201 but not paid ({states})")
    bad = {s: n for s, n in r["statuses"].items() if not s.startswith("2")}
    if bad:
        parts.append("HTTP " + ", ".join(f"{s}: {n}" for s, n in bad.items()))
    if r["conn_errors"]:
        parts.append(f"{r['conn_errors']} connection errors")
    return "; ".join(parts) or "none"


def render(ctx: Context, results: dict[str, Any], pool_size: int) -> str:
    """The markdown section."""
    cores = os.cpu_count() or 1
    intake = _intake(ctx)
    intake_rps = median([o["intake"]["rps"] for o in intake["rounds"]]) if intake else None
    out: list[str] = [f"## {TITLE}", ""]
    out.append(
        f'The intake load above, but every order carries `"payment": {{"method": '
        f'"{METHOD}"}}`: serve commits the order with its payment attempt, charges the '
        f"sandbox provider (fault profile `none`: no latency, no faults) through the Stripe "
        f"adapter, settles and answers 201 with the order `paid`. Only such answers count; "
        f"anything else is an error. Two placements of the provider: **in its own process** "
        f"(`orderguard sandbox-provider`, serve pointed at it with "
        f"`ORDERGUARD_STRIPE_API_KEY`/`ORDERGUARD_STRIPE_BASE_URL`; the headline, as a real "
        f"provider is another machine, although here it shares the same {cores} cores; it "
        f"sends no webhooks) and **inside serve** (the default in-process sandbox, a thread of "
        f"the server process); and a third variant, **in its own process, sending its "
        f"webhooks to serve** (`--webhook-url` serve's `/v1/webhooks/stripe`, signed with the "
        f"`ORDERGUARD_STRIPE_WEBHOOK_SECRET` serve is given: {EVENTS_PER_CHARGE} events per "
        f"card charge, as a Stripe account subscribed to them sends). "
        f"{ctx.connections} connections, {ctx.rounds} interleaved rounds (own process, own "
        f"process with webhooks, inside serve, ...), each run {ctx.warmup:g} s warm-up then "
        f"{ctx.duration:g} s measured, from scratch (tables truncated, CHECKPOINT, fresh "
        f"ledger, fresh processes); medians over rounds. Pool: {pool_size} connections."
    )
    out.append("")
    out.append(
        "| variant | paid orders/s | p50 ms | p95 ms | p99 ms | errors | server CPU (cores) "
        "| server CPU ms/order | sandbox CPU (cores) | sandbox CPU ms/charge "
        "| postgres CPU (cores) | machine busy (other) | / intake |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        rps = _med(results, mode, "rps")
        server = _med(results, mode, "cpu", "server")
        sandbox = _med(results, mode, "cpu", "sandbox")
        threads = _med(results, mode, "cpu", "server.threads")
        errors = sum(o[mode]["errors"] for o in results["rounds"])
        if mode != "inprocess":
            sbx = f"{sandbox:.2f} | {1000 * sandbox / rps:.2f}"
        else:
            sbx = f"({threads:.2f} in non-main threads) | ({1000 * threads / rps:.2f})"
        ratio = f"{rps / intake_rps:.2f}" if intake_rps else "n/a"
        out.append(
            f"| {LABEL[mode]} | **{rps:,.0f}** | {_med(results, mode, 'p50'):.1f} "
            f"| {_med(results, mode, 'p95'):.1f} | {_med(results, mode, 'p99'):.1f} | {errors} "
            f"| {server:.2f} | {1000 * server / rps:.2f} | {sbx} "
            f"| {_med(results, mode, 'cpu', 'postgres'):.2f} "
            f"| {_med(results, mode, 'cpu', 'machine'):.2f} "
            f"({_med(results, mode, 'cpu', 'other'):.2f}) | {ratio} |"
        )
    if intake:
        i_server = median([o["intake"]["cpu"]["server"] for o in intake["rounds"]])
        out.append(
            f"| orderguard intake, no payment (section above) | {intake_rps:,.0f} "
            f"| {median([o['intake']['p50'] for o in intake['rounds']]):.1f} "
            f"| {median([o['intake']['p95'] for o in intake['rounds']]):.1f} "
            f"| {median([o['intake']['p99'] for o in intake['rounds']]):.1f} "
            f"| {sum(o['intake']['errors'] for o in intake['rounds'])} | {i_server:.2f} "
            f"| {1000 * i_server / intake_rps:.2f} | - | - "
            f"| {median([o['intake']['cpu']['postgres'] for o in intake['rounds']]):.2f} "
            f"| {median([o['intake']['cpu']['machine'] for o in intake['rounds']]):.2f} "
            f"({median([o['intake']['cpu']['other'] for o in intake['rounds']]):.2f}) | 1.00 |"
        )
    out.append("")
    if intake_rps:
        for mode in MODES:
            per_round = [o[mode]["rps"] / intake_rps for o in results["rounds"]]
            out.append(
                f"- **{LABEL[mode]} / intake** = {_med(results, mode, 'rps') / intake_rps:.2f} "
                f"(per round, against the intake median: "
                f"{', '.join(f'{r:.2f}' for r in per_round)})"
            )
    else:
        out.append("- ratio to intake: n/a (the intake section did not run in this invocation)")
    out.extend(_same_round(results))
    out.append(
        f"- {LABEL['webhooks']}: its server CPU ms/order above is the measured window's, into "
        f"which webhooks of warm-up orders arrive late and out of which some of the window's "
        f"own fall; its all-in count, webhooks included, is in the targets below."
    )
    for mode in MODES:
        runs = [o[mode] for o in results["rounds"]]
        details = "; ".join(
            f"round {n}: {_errors(r)}" for n, r in enumerate(runs, 1) if _errors(r) != "none"
        )
        out.append(f"- errors, {LABEL[mode]}: {details or 'none'}")
    out.append("")
    out.extend(_targets(results, intake))
    out.extend(_checks(results))
    out.extend(_single(results, intake))
    out.extend(_every_run(results))
    out.extend(_bounds(ctx, results, intake, pool_size))
    return "\n".join(out)


def _same_round(results: dict[str, Any]) -> list[str]:
    """The headline against the unpaid run of its own round (when the rounds have one)."""
    rounds = results["rounds"]
    if not rounds or any(UNPAID not in o for o in rounds):
        return []
    failed = [n for n, o in enumerate(rounds, 1) if o[UNPAID]["errors"]]
    if failed:  # fewer unpaid orders/s would flatter the paid ones: no verdict
        return [
            f"- Round by round, against the same setup without a payment: n/a (its runs had "
            f"errors in rounds {', '.join(map(str, failed))}: "
            + "; ".join(_errors(rounds[n - 1][UNPAID]) for n in failed)
            + ")"
        ]
    rps = [o["external"]["rps"] / o[UNPAID]["rps"] for o in rounds]
    cpu = [
        (o["external"]["cpu"]["server"] / o["external"]["rps"])
        / (o[UNPAID]["cpu"]["server"] / o[UNPAID]["rps"])
        for o in rounds
    ]
    unpaid_rps = _med(results, UNPAID, "rps")
    unpaid_ms = 1000 * _med(results, UNPAID, "cpu", "server") / unpaid_rps
    return [
        f"- **Round by round, against the same setup without a payment** (run just before "
        f"the paid variants in each round; {unpaid_rps:,.0f} orders/s, {unpaid_ms:.2f} ms of "
        f"server CPU per order, medians): {LABEL['external']} / unpaid orders/s = "
        f"{median(rps):.2f} (per round: {', '.join(f'{r:.2f}' for r in rps)}; target >= "
        f"{TARGET_RATIO:g}: {_verdict(median(rps) >= TARGET_RATIO)}); server CPU per paid "
        f"order / per unpaid order = {median(cpu):.2f} (per round: "
        f"{', '.join(f'{r:.2f}' for r in cpu)}; target <= {TARGET_CPU:g}: "
        f"{_verdict(median(cpu) <= TARGET_CPU)})",
    ]


def _intake_ms(intake: dict[str, Any]) -> float:
    """Serve's CPU per unpaid order: the intake section's medians, server cores / orders/s."""
    i_rps = median([o["intake"]["rps"] for o in intake["rounds"]])
    i_server = median([o["intake"]["cpu"]["server"] for o in intake["rounds"]])
    return 1000 * i_server / i_rps


def _verdict(met: bool) -> str:
    return "**MET**" if met else "**NOT MET**"


def _targets(results: dict[str, Any], intake: dict[str, Any] | None) -> list[str]:
    """Issue 20's two targets for the headline (no webhooks) and the webhooks variant."""
    allin = {m: _med(results, m, "allin", "ms_per_order") for m in MODES}
    rps = {m: _med(results, m, "rps") for m in MODES}
    window = {m: 1000 * _med(results, m, "cpu", "server") / rps[m] for m in MODES}
    out = [
        f"**Issue 20's targets**: paid orders/s / intake orders/s >= {TARGET_RATIO:g}, and "
        f"serve's CPU per paid order / per unpaid (intake) order <= {TARGET_CPU:g}. The "
        f"unpaid figures are the intake section's of this invocation (medians over its "
        f"rounds: orders/s, and server cores / orders/s). For the headline, CPU per paid "
        f"order is the measured window's (server cores / paid orders/s, as in the table). "
        f"For the webhooks variant it is counted *all in*: the sandbox delivers at most 8 "
        f"webhooks at once, so under load they lag the orders and a window would miss some "
        f"of its own orders' webhooks; so serve's CPU time (`/proc`, user + system, the "
        f"process and its worker) is taken from the start of the load (warm-up included) "
        f"until `webhook_events` in PostgreSQL holds as many processed rows as the "
        f"sandbox's ledger holds events (read after the load: a charge's events are "
        f"committed with it), and divided by the paid orders in the database (warm-up "
        f"included). The same count for the headline, which has no webhooks to wait for "
        f"(load start to load end), is in the details below, to compare the two methods.",
        "",
        "| variant | paid orders/s | / intake | target >= "
        f"{TARGET_RATIO:g} | server CPU ms/paid order | / unpaid | target <= {TARGET_CPU:g} |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    intake_rps = median([o["intake"]["rps"] for o in intake["rounds"]]) if intake else None
    intake_ms = _intake_ms(intake) if intake else None
    rows = [
        ("external", "window", window["external"]),
        ("webhooks", "all in, webhooks processed", allin["webhooks"]),
    ]
    for mode, how, ms in rows:
        if intake_rps and intake_ms:
            ratio, cpu = rps[mode] / intake_rps, ms / intake_ms
            cells = (
                f"{ratio:.2f} | {_verdict(ratio >= TARGET_RATIO)} | {ms:.2f} ({how}) "
                f"| {cpu:.2f} | {_verdict(cpu <= TARGET_CPU)}"
            )
        else:
            cells = f"n/a | n/a | {ms:.2f} ({how}) | n/a | n/a"
        out.append(f"| {LABEL[mode]} | {rps[mode]:,.0f} | {cells} |")
    if not intake:
        out.append("")
        out.append("- targets: n/a (the intake section did not run in this invocation)")
    out += [
        "",
        "<details><summary>All-in counts, every run</summary>",
        "",
        "| round | variant | paid orders (warm-up included) | serve CPU s | seconds | "
        "waited for webhooks after the load, s | sandbox's events | processed | "
        "ms/paid order all in | ms/paid order, window |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, outcome in enumerate(results["rounds"], 1):
        for mode in MODES:
            r = outcome[mode]
            a = r["allin"]
            out.append(
                f"| {number} | {mode} | {a['paid_orders']:,} | {a['server_cpu']:.2f} "
                f"| {a['seconds']:.1f} | {a['drain_seconds']:.1f} | {a['events']:,} "
                f"| {a['processed']:,} | {a['ms_per_order']:.2f} "
                f"| {1000 * r['cpu']['server'] / r['rps']:.2f} |"
            )
    out += [
        "",
        "Medians all in: " + ", ".join(f"{m} {allin[m]:.2f} ms" for m in MODES) + ".",
        "",
        "</details>",
        "",
    ]
    return out


def _checks(results: dict[str, Any]) -> list[str]:
    runs = [(f"round {n} {m}", o[m]) for n, o in enumerate(results["rounds"], 1) for m in MODES]
    runs += [(f"1 connection {m}", results["single"][m]) for m in SINGLE_MODES]
    orders = sum(r["check"]["orders"] for _, r in runs)
    paid = sum(r["check"]["by_state"].get("paid", 0) for _, r in runs)
    charged = sum(r["check"]["succeeded_charges"] for _, r in runs)
    sampled = sum(r["check"]["sampled"] for _, r in runs)
    sampled_ok = sum(r["check"]["sampled_ok"] for _, r in runs)
    problems = [f"{name}: {p}" for name, r in runs for p in r["check"]["problems"]]
    not_paid: dict[str, int] = {}
    for _, r in runs:
        for state, n in r["check"]["by_state"].items():
            if state != "paid":
                not_paid[state] = not_paid.get(state, 0) + n
    out = [
        "**Cross-check against the provider** (after every run, PostgreSQL against the "
        "sandbox's `GET /ledger`):",
        "",
        f"- every order of every run ({orders:,} orders, warm-up included): {paid:,} `paid`, "
        f"{charged:,} succeeded charges in the ledgers; "
        + (
            "other states: " + ", ".join(f"{s} {n}" for s, n in not_paid.items()) + "; "
            if not_paid
            else ""
        )
        + (
            "**every paid order has exactly one succeeded charge and no charge lacks an order**"
            if not problems
            else f"**{len(problems)} problems**: " + "; ".join(problems[:5])
        ),
        f"- {sampled:,} sampled answers (up to {SAMPLE} per run, measured window): "
        f"{sampled_ok:,} match the ledger exactly (order paid, one attempt, succeeded; one "
        f"succeeded charge on that PaymentIntent for the order's amount).",
        "",
    ]
    return out


def _single(results: dict[str, Any], intake: dict[str, Any] | None) -> list[str]:
    alone = results["alone"]
    out = [
        "**One connection** (no concurrency; 1 s warm-up, 3 s measured): the latency of one "
        "paid order end to end, and of its parts.",
        "",
        "| what | per second | p50 ms | p99 ms | server CPU ms/order | sandbox CPU ms/charge |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in SINGLE_MODES:
        r = results["single"][mode]
        sandbox = r["cpu"]["sandbox"] if mode == "external" else r["cpu"]["server.threads"]
        out.append(
            f"| {LABEL[mode]} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {1000 * r['cpu']['server'] / r['rps']:.2f} "
            f"| {'' if mode == 'external' else '('}{1000 * sandbox / r['rps']:.2f}"
            f"{'' if mode == 'external' else ')'} |"
        )
    if intake:
        r = intake["single"]["intake"]
        out.append(
            f"| intake, no payment (section above) | {r['rps']:,.0f} | {r['p50']:.2f} "
            f"| {r['p99']:.2f} | {1000 * r['cpu']['server'] / r['rps']:.2f} | - |"
        )
    out.append(
        f"| the sandbox alone: one client charging it directly, sequentially (httpx, 3 s) "
        f"| {alone['rate']:,.0f} | {alone['p50']:.2f} | {alone['p99']:.2f} | - "
        f"| {alone['sandbox_ms']:.2f} |"
    )
    out.append("")
    return out


def _every_run(results: dict[str, Any]) -> list[str]:
    out = [
        "<details><summary>Every run</summary>",
        "",
        "| round | variant | orders/s | p50 | p95 | p99 | max ms | errors | server | server "
        "main thread | its wait for a CPU | server other threads | sandbox | postgres | "
        "load gen | machine | other | steal |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|",
    ]
    for number, outcome in enumerate(results["rounds"], 1):
        for mode in (UNPAID, *MODES) if UNPAID in outcome else MODES:
            r = outcome[mode]
            c = r["cpu"]
            out.append(
                f"| {number} | {mode} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} "
                f"| {r['p99']:.1f} | {r['max']:.0f} | {r['errors']} | {c['server']:.2f} "
                f"| {c.get('server.main', 0.0):.2f} | {c.get('waiting.server.main', 0.0):.2f} "
                f"| {c['server.threads']:.2f} "
                f"| {c['sandbox']:.2f} | {c['postgres']:.2f} | {c['loadgen']:.2f} "
                f"| {c['machine']:.2f} | {c['other']:.2f} | {c['steal']:.2f} |"
            )
    out += ["", "</details>", ""]
    return out


def _per_order(results: dict[str, Any], mode: str, who: str, key: str) -> float:
    """Median over rounds of a /proc counter of ``who`` per order stored in the run."""
    values = []
    for outcome in results["rounds"]:
        r = outcome[mode]
        orders = r["check"]["orders"] or 1
        values.append(r["counters"].get(who, {}).get(key, 0) / orders)
    return median(values)


def _waiting(results: dict[str, Any], mode: str) -> float:
    """Median share of the measured window the server's event loop waited for a CPU (0
    when the load generator could not read it)."""
    key = "waiting.server.main"
    if any(key not in o[mode]["cpu"] for o in results["rounds"]):
        return 0.0
    return _med(results, mode, "cpu", key)


#: The main thread's running and waiting for a CPU (``schedstat``).
LOOP = ("main_run_ns", "main_runqueue_wait_ns")


def _loop(results: dict[str, Any], mode: str) -> tuple[float, float, float, float]:
    """The server's event loop in ``mode``'s runs: ms it ran and waited for a CPU per order
    (whole runs, warm-up included), and the share of the measured window it ran or waited
    to, and waited (the load generator's snapshots)."""
    ran = _per_order(results, mode, "server", LOOP[0]) / 1e6
    waited = _per_order(results, mode, "server", LOOP[1]) / 1e6
    waiting = _waiting(results, mode)
    return ran, waited, _med(results, mode, "cpu", "server.main") + waiting, waiting


def _unpaid_loop(results: dict[str, Any]) -> str:
    """An unpaid order's event loop, as the paid one's is described, as a clause ('' if the
    rounds had no unpaid run or no ``schedstat``)."""
    if any(UNPAID not in o for o in results["rounds"]):
        return ""
    ran, waited, busy, waiting = _loop(results, UNPAID)
    if not ran:
        return ""
    return (
        f" An unpaid order's loop ran {ran:.2f} ms and waited {waited:.2f} ms "
        f"({busy:.0%} of its time running or waiting to, {waiting:.0%} waiting)."
    )


def _bounds(
    ctx: Context, results: dict[str, Any], intake: dict[str, Any] | None, pool_size: int
) -> list[str]:
    from orderguard.providers.stripe.sandbox.ledger import SYNCHRONOUS as SANDBOX_SYNCHRONOUS

    cores = os.cpu_count() or 1
    mode = "external"
    rps = _med(results, mode, "rps")
    server = _med(results, mode, "cpu", "server")
    main = _med(results, mode, "cpu", "server.main")
    sandbox = _med(results, mode, "cpu", "sandbox")
    postgres = _med(results, mode, "cpu", "postgres")
    machine = _med(results, mode, "cpu", "machine")
    other = _med(results, mode, "cpu", "other")
    loadgen = _med(results, mode, "cpu", "loadgen")
    in_rps = _med(results, "inprocess", "rps")
    in_server = _med(results, "inprocess", "cpu", "server")
    in_main = _med(results, "inprocess", "cpu", "server.main")
    in_threads = _med(results, "inprocess", "cpu", "server.threads")
    single = results["single"][mode]
    alone = results["alone"]
    server_ms = 1000 * server / rps
    sandbox_ms = 1000 * sandbox / rps
    out = ["**What bounds paid throughput** (sandbox in its own process unless said)", ""]
    intake_ms = _intake_ms(intake) if intake else None
    out.append(
        f"- Server process: {server:.2f} cores ({main:.2f} of them its event-loop thread) = "
        f"{server_ms:.2f} ms CPU per paid order"
        + (
            f", against {intake_ms:.2f} ms per intake order: charging (the Stripe SDK's "
            f"request, built once, over orderguard's own HTTP client) and settling (a second "
            f"statement) cost the server "
            f"{server_ms - intake_ms:.2f} ms more"
            if intake_ms
            else ""
        )
        + f"; one event loop caps it near {1000 / server_ms:,.0f} paid orders/s."
    )
    loop_ran, loop_waited, loop_busy, loop_waiting = _loop(results, mode)
    if loop_ran:
        out.append(
            f"- The server's event loop, per paid order (warm-up included): ran "
            f"{loop_ran:.2f} ms and waited {loop_waited:.2f} ms for a CPU, ready to run while "
            f"other threads or processes held the cores (`/proc/.../schedstat`): "
            f"{loop_busy:.0%} of its time running or waiting to ({loop_waiting:.0%} waiting), "
            f"a ceiling near {1000 / (loop_ran + loop_waited):,.0f} paid orders/s while the "
            f"other processes take what they take now." + _unpaid_loop(results)
        )
    out.append(
        f"- Sandbox process: {sandbox:.2f} cores = {sandbox_ms:.2f} ms CPU per charge (alone, "
        f"one sequential client: {alone['sandbox_ms']:.2f} ms per charge, {alone['p50']:.2f} ms "
        f"round trip); its own ceiling is near {1000 / sandbox_ms:,.0f} charges/s on one core. "
        f"Its ledger is SQLite in WAL mode with `synchronous={SANDBOX_SYNCHRONOUS}`"
        + (
            ", so neither a commit nor a checkpoint fsyncs"
            if SANDBOX_SYNCHRONOUS == "OFF"
            else ", so a commit does not fsync (a checkpoint does)"
        )
        + f": per charge it made "
        f"{_per_order(results, mode, 'sandbox', 'syscw'):.1f} write system calls and "
        f"{_per_order(results, mode, 'sandbox', 'write_bytes') / 1024:.1f} KiB reached "
        f"storage (writeback, not waited for), and blocked "
        f"{_per_order(results, mode, 'sandbox', 'voluntary_ctxt_switches'):.1f} times "
        f"(voluntary context switches); its write lock is held only around synchronous "
        f"SQLite calls, so it serialises CPU work that one event loop serialises anyway."
    )
    out.append(
        f"- Machine: {machine:.2f} of {cores} cores busy (server {server:.2f}, sandbox "
        f"{sandbox:.2f}, PostgreSQL {postgres:.2f} = {1000 * postgres / rps:.2f} ms per order, "
        f"load generator {loadgen:.2f}, other {other:.2f}); the server was descheduled "
        f"{_per_order(results, mode, 'server', 'nonvoluntary_ctxt_switches'):.1f} times per "
        f"order (involuntary context switches), the sandbox "
        f"{_per_order(results, mode, 'sandbox', 'nonvoluntary_ctxt_switches'):.1f}."
    )
    base = intake["single"]["intake"]["p50"] if intake else None
    out.append(
        f"- Round trip: at one connection a paid order takes {single['p50']:.2f} ms (p50)"
        + (f" against {base:.2f} ms for an unpaid one" if base else "")
        + f"; the charge itself, the sandbox answering one client directly, "
        f"{alone['p50']:.2f} ms. At {ctx.connections} connections the provider round trip "
        f"does not hold a database connection (the order is committed before the call), so "
        f"it adds latency, not a pool limit."
    )
    out.append(
        f"- Inside serve: {in_rps:,.0f} paid orders/s, the server process at {in_server:.2f} "
        f"cores ({in_main:.2f} its event loop, {in_threads:.2f} its other threads, i.e. the "
        f"sandbox's thread), {1000 * in_server / in_rps:.2f} ms CPU per order all told; the "
        f"sandbox shares the server's process and the GIL."
    )
    out.append("")
    verdict = []
    total_ms = server_ms + sandbox_ms + 1000 * postgres / rps
    if server >= 0.85:
        verdict.append(
            f"the server's single event loop is saturated ({server:.2f} cores, "
            f"{server_ms:.2f} ms per paid order), so paid throughput ≈ 1 core / server CPU "
            f"per order; the sandbox ({sandbox:.2f} cores) has headroom"
        )
    elif sandbox >= 0.85:
        verdict.append(
            f"the sandbox's single event loop is saturated ({sandbox:.2f} cores, "
            f"{sandbox_ms:.2f} ms per charge) while the server is at {server:.2f}"
        )
    elif machine >= 0.85 * cores:
        verdict.append(
            f"the machine's {cores} cores are saturated ({machine:.2f} busy): server "
            f"{server:.2f} + sandbox {sandbox:.2f} + PostgreSQL {postgres:.2f} + others "
            f"{other + loadgen:.2f}, so neither process gets a full core; per paid order the "
            f"server needs {server_ms:.2f} ms, the sandbox {sandbox_ms:.2f} ms and PostgreSQL "
            f"{1000 * postgres / rps:.2f} ms of CPU, {total_ms:.2f} ms "
            f"in all → ≈ {1000 * cores / total_ms:,.0f} "
            f"paid orders/s on {cores} cores at best"
        )
    elif loop_ran and loop_busy >= 0.85:
        verdict.append(
            f"the server's event loop is the bottleneck although it used only {main:.2f} "
            f"cores: it also waited for a CPU {loop_waiting:.0%} of the time, the cores held "
            f"by PostgreSQL ({postgres:.2f} cores), the sandbox ({sandbox:.2f}) and the load "
            f"generator ({machine:.2f} of {cores} cores busy), so the CPU a paid order costs "
            f"any of them (server {server_ms:.2f} ms, sandbox {sandbox_ms:.2f} ms, PostgreSQL "
            f"{1000 * postgres / rps:.2f} ms) slows it"
        )
    else:
        verdict.append(
            f"no process is CPU-saturated (server {server:.2f}, sandbox {sandbox:.2f}, machine "
            f"{machine:.2f} of {cores}): waiting (round trips, pool) limits it"
        )
    if sandbox < 0.5:
        verdict.append(
            f"not the sandbox alone (its process used {sandbox:.2f} cores; its SQLite ledger "
            f"does not fsync) and not the provider round trip ({alone['p50']:.2f} ms "
            f"for a charge, outside any transaction): the server's own CPU per paid order "
            f"({server_ms:.2f} ms"
            + (f", {server_ms / intake_ms:.1f}x an unpaid order's" if intake_ms else "")
            + ") is what to cut"
        )
    out.append("Verdict: " + "; ".join(verdict) + ".")
    out.append("")
    return out


def section(ctx: Context) -> str:
    """Run the benchmark and return its markdown section."""
    from orderguard.config import Settings

    pool_size = ctx.pool_size or Settings().db_pool_size
    results = run(ctx)
    (ctx.workdir / "paid.json").write_text(json.dumps(results, default=vars, indent=1))
    return render(ctx, results, pool_size)
