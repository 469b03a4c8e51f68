"""``orderguard demo``: a storm of faults, shoppers who misbehave, and the proof that no
order was lost.

The server (with its worker) runs on a fresh SQLite file (or the database given), the
sandbox provider in a process of its own with the ``storm`` profile; the shopper simulator
places orders over HTTP; then the demo waits until nothing is left to resolve, runs one
last sweep of the provider's charges, and checks the invariants against the database and
the sandbox's ledger. Exit code 0 if and only if every invariant holds.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orderguard.api.server import free_port
from orderguard.demo import audit, report, stack
from orderguard.demo.options import ACTION_EXPIRY_S as ACTION_EXPIRY_S  # (re-exported)
from orderguard.demo.options import DemoOptions as DemoOptions
from orderguard.demo.options import LaneRunner, Schedule
from orderguard.demo.shoppers import Checkout, ShopperSimulator, ShopperStats
from orderguard.domain.schedule import RecheckSchedule
from orderguard.providers import labs
from orderguard.storage.connect import connect

#: The storm, with held answers and outages shortened so a run takes a minute or two.
#: Every other probability is the sandbox's ``storm`` profile unchanged.
STORM_TOML = """base = "storm"
hold_s = 3.0
outage_s = 1.5
"""
#: The shopper's browser gives up sooner than the service waits for the provider.
CLIENT_TIMEOUT_S = 1.5
PAYMENT_TIME_BUDGET_S = 2.0
#: The janitor's schedule (about 3.3 days at scale 1) compressed twenty thousand times.
RECHECK_SCALE = 0.00005


def service_settings(options: DemoOptions) -> dict[str, str]:
    """The compressed schedule the demo runs the service with (also shown in the report)."""
    settings = {
        "ORDERGUARD_PAYMENT_TIME_BUDGET_S": str(PAYMENT_TIME_BUDGET_S),
        "ORDERGUARD_RECHECK_SCALE": str(RECHECK_SCALE),
        "ORDERGUARD_WORKER_ROUND_S": "0.2",
        "ORDERGUARD_JANITOR_LEASE_S": "15",
        "ORDERGUARD_JANITOR_CONCURRENCY": "32",
        "ORDERGUARD_BREAKER_COOL_DOWN_S": "2",
        "ORDERGUARD_ACTION_EXPIRY_MINUTES": str(options.action_expiry_s / 60),
        "ORDERGUARD_SWEEP_EVERY_S": "10",
    }
    if options.planted_defect:
        settings["ORDERGUARD_PLANTED_DEFECT"] = options.planted_defect
    return settings


def schedule_summary(action_expiry_s: float = ACTION_EXPIRY_S) -> dict[str, object]:
    full = RecheckSchedule()
    scaled = full.scaled(RECHECK_SCALE)
    total = sum((sum(w, timedelta()) for w in full.waits.values()), timedelta())
    return {
        "recheck_scale": RECHECK_SCALE,
        "janitor_schedule_full_s": int(
            max(sum(w, timedelta()) for w in full.waits.values()).total_seconds()
        ),
        "janitor_schedule_demo_s": round(
            max(sum(w, timedelta()) for w in scaled.waits.values()).total_seconds(), 1
        ),
        "all_states_full_s": int(total.total_seconds()),
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "payment_time_budget_s": PAYMENT_TIME_BUDGET_S,
        "action_expiry_s": action_expiry_s,
        "sandbox_hold_s": 3.0,
        "sandbox_outage_s": 1.5,
    }


async def run_demo(options: DemoOptions, *, lanes: LaneRunner | None = None) -> int:
    """Run the demo; return the process exit code. ``lanes`` runs it when the shoppers
    pay at a wallet or at every provider (``--provider``)."""
    console = Console(stderr=options.json_out)
    seed = options.seed if options.seed is not None else random.randrange(1_000_000)
    with tempfile.TemporaryDirectory(prefix="orderguard-demo-") as tmp:
        work = options.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = await _run(options, seed, work, console, lanes)
        except stack.StackError as exc:
            console.print(f"[red bold]the demo could not run:[/] {exc}")
            return 2
    if options.json_out:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    else:
        report.render(result, console)
    return 0 if result.ok else 1


async def _run(
    options: DemoOptions, seed: int, work: Path, console: Console, lanes: LaneRunner | None
) -> audit.Report:
    database_url = options.database_url or f"sqlite:///{work / 'orderguard.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    profile: Path | str = options.faults
    if options.faults == "storm":
        profile = work / "storm.toml"
        profile.write_text(STORM_TOML)
    if options.provider not in (None, labs.lab().provider):
        if lanes is None:
            raise stack.StackError(f"no runner for the provider {options.provider!r}")
        schedule = Schedule(
            service_settings(options),
            schedule_summary(options.action_expiry_s),
            CLIENT_TIMEOUT_S,
            final_sweep,
        )
        return await lanes(options, seed, work, console, profile, schedule)
    console.print(
        f"[bold]orderguard demo[/]  seed {seed} (replay: --seed {seed})  faults {options.faults}  "
        f"database {stack.redact(database_url)}"
    )
    procs: list[stack.Proc] = []
    try:
        # both start at once (each knows the other's address beforehand)
        webhook_url = f"{base}/v1/webhooks/{labs.sandbox_route()}"
        box, sandbox_url = stack.sandbox(
            work, profile=profile, seed=seed, webhook_url=webhook_url, wait=False
        )
        procs.append(box)
        env = stack.service_env(database_url, sandbox_url, base, **service_settings(options))
        if not database_url.startswith("sqlite"):
            stack.migrate(work, env)  # serve migrates SQLite itself, not PostgreSQL
        api = stack.api(work, env, port, worker=True, wait=False)
        procs.append(api)
        stack.wait_until_up(box, f"{sandbox_url}/_sandbox/faults")
        stack.wait_until_up(api, f"{base}/v1/orders?limit=1")
        target = Target(base, database_url, sandbox_url, env, work)
        return await storm(options, seed, target, console)
    finally:
        for proc in reversed(procs):
            proc.stop()


@dataclass(frozen=True)
class Target:
    """A running deployment the storm is sent to, however it was started: the demo's own
    stack (one ``serve``), or a test's several hosts behind a load balancer."""

    #: Where the shoppers reach the API (and the sandbox sends its webhooks).
    base_url: str
    database_url: str
    #: The card sandbox the service charges at; its ``/ledger`` is the oracle.
    sandbox_url: str
    #: The settings of a service process (the final sweep runs with them).
    env: dict[str, str]
    #: Where the final sweep runs.
    work: Path


async def storm(
    options: DemoOptions,
    seed: int,
    target: Target,
    console: Console,
    *,
    run_id: str | None = None,
) -> audit.Report:
    """Drive the shoppers against ``target``, wait until nothing is left to resolve, sweep
    once more, and audit the run against the database and the sandbox's ledger. The run's
    orders carry the merchant references ``DEMO-<run_id>-*`` (``run_id``: random if None)."""
    run_id = run_id or uuid.uuid4().hex[:8]
    database_url = target.database_url
    result = await _drive(options, seed, run_id, target.base_url, database_url, console)
    console.print(f"final sweep: {final_sweep(target.work, target.env)}")
    db = await connect(database_url, pool_size=2)
    try:
        snapshot = await audit.snapshot(db, f"DEMO-{run_id}-")
    finally:
        await db.close()
    book = stack.ledger(target.sandbox_url)
    faults = stack.fault_counts(target.sandbox_url)
    shoppers, placed_in, resolved_in = result
    return audit.build_report(
        shoppers,
        snapshot,
        book,
        faults,
        seed=seed,
        database="postgresql" if database_url.startswith("postgres") else "sqlite",
        placed_in_s=placed_in,
        resolved_in_s=resolved_in,
        schedule=schedule_summary(options.action_expiry_s),
    )


async def _drive(
    options: DemoOptions, seed: int, run_id: str, base: str, database_url: str, console: Console
) -> tuple[ShopperStats, float, float]:
    progress = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        placing = progress.add_task("shoppers checking out", total=options.orders)

        def done(_: Checkout) -> None:
            progress.advance(placing)

        simulator = ShopperSimulator(
            base,
            seed=seed,
            client_timeout_s=CLIENT_TIMEOUT_S,
            concurrency=options.concurrency,
            run_id=run_id,
            on_done=done,
            refund_share=options.refund_share,
            paid_within_s=options.paid_within_s,
        )
        started = time.monotonic()
        placed = asyncio.Event()
        # the back office's refunds go on while the orders are being resolved
        running = asyncio.create_task(simulator.run(options.orders, placed=placed.set))
        waiter = asyncio.create_task(placed.wait())
        try:
            await asyncio.wait({running, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        placed_in = time.monotonic() - started
        db = await connect(database_url, pool_size=2)
        try:
            prefix = f"DEMO-{run_id}-"
            snap = await audit.snapshot(db, prefix)
            resolving = progress.add_task("orders resolved", total=len(snap.orders))
            deadline = time.monotonic() + options.settle_timeout_s
            while True:
                # expiry runs in the worker's rounds and asks the provider (through the
                # storm) before it cancels: give it time past the deadline
                wait_for = timedelta(seconds=options.action_expiry_s + 12)
                open_ = snap.unresolved(datetime.now(UTC), action_expiry=wait_for)
                progress.update(
                    resolving, total=len(snap.orders), completed=len(snap.orders) - len(open_)
                )
                if (not open_ and running.done()) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
                snap = await audit.snapshot(db, prefix)
            shoppers = await running  # the back office is bounded by its own deadlines
        finally:
            running.cancel()  # (a no-op once it is done) nothing outlives the run
            await db.close()
        resolved_in = time.monotonic() - started
    return shoppers, placed_in, resolved_in


def final_sweep(work: Path, env: dict[str, str]) -> str:
    """One last sweep of the provider's charges, as the worker runs every few seconds here
    (every few minutes by default); its summary."""
    return stack.command(work, env, "sweep")
