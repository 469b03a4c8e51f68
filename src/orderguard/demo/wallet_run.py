"""``orderguard demo --provider alipay|wechatpay|all``: the demo with wallet shoppers.

Each provider's sandbox runs in a process of its own with the same fault profile (``storm``
by default, its held answers and outages shortened as in the card demo: the wallets' storm
adds notifications dropped, duplicated, delayed, reordered or ahead of the query, queries
answering ``SYSTEM_ERROR`` and payments landing during a close); the wallets' are configured
from what ``orderguard sandbox-provider --print-config`` gives, their notifications sent to
the server's route for them. ``all`` runs the card sandbox and both wallets against one
server with an account at each, the shoppers spread over them. Each provider
has its own shoppers, its own run prefix in the database and its own ledger: the
invariants of :mod:`.audit` are checked provider by provider against that provider's
ledger (a wallet's through :mod:`.wallet_audit`), then put together in one report.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from orderguard.api.server import free_port
from orderguard.demo import audit, stack, wallet_audit
from orderguard.demo.options import DemoOptions, Schedule
from orderguard.demo.shoppers import Checkout, ShopperSimulator, ShopperStats
from orderguard.demo.wallets import WalletShoppers, wallet_misled
from orderguard.providers import labs
from orderguard.storage.connect import connect

#: The wallets the demo runs shoppers at.
WALLETS = ("alipay", "wechatpay")
#: The card sandbox (the development one): its shoppers and ledger are the card demo's.
CARD = labs.lab().provider


@dataclass
class Lane:
    """One provider's part of a run: its sandbox, shoppers and run prefix."""

    provider: str
    sandbox_url: str
    run_id: str
    count: int
    simulator: ShopperSimulator | None = None
    stats: ShopperStats = field(default_factory=ShopperStats)

    @property
    def prefix(self) -> str:
        return f"DEMO-{self.run_id}-"


def lane_providers(provider: str | None) -> tuple[str, ...]:
    """The providers a run with ``--provider provider`` charges at (None: the card one)."""
    if provider == "all":
        return (CARD, *WALLETS)
    return (provider or CARD,)


def spread(orders: int, providers: tuple[str, ...]) -> dict[str, int]:
    """``orders`` checkouts spread over ``providers`` (the first takes what is left over)."""
    each = orders // len(providers)
    counts = dict.fromkeys(providers, each)
    counts[providers[0]] += orders - each * len(providers)
    return counts


async def run_lanes(
    options: DemoOptions,
    seed: int,
    work: Path,
    console: Console,
    storm: Path | str,
    schedule: Schedule,
) -> audit.Report:
    """Start the sandboxes and the server, run every lane's shoppers, audit each lane
    against its own ledger; the report."""
    database_url = options.database_url or f"sqlite:///{work / 'orderguard.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run_id = uuid.uuid4().hex[:8]
    providers = lane_providers(options.provider)
    counts = spread(options.orders, providers)
    console.print(
        f"[bold]orderguard demo[/]  provider {options.provider}  seed {seed} "
        f"(replay: --seed {seed})  faults {options.faults}  database "
        f"{stack.redact(database_url)}"
    )
    procs: list[stack.Proc] = []
    lanes: list[Lane] = []
    settings: dict[str, str] = {}
    try:
        waits: list[tuple[stack.Proc, str]] = []
        for provider in providers:
            if provider == CARD:
                hook = f"{base}/v1/webhooks/{labs.sandbox_route()}"
                box, url = stack.sandbox(
                    work, profile=storm, seed=seed, webhook_url=hook, wait=False
                )
                settings.update(labs.sandbox_env(url, stack.WEBHOOK_SECRET))
                waits.append((box, f"{url}/_sandbox/faults"))
            else:
                box, url, found = stack.wallet_sandbox(
                    work, provider, base, profile=options.wallet_faults or storm, seed=seed
                )
                settings.update(found)
                waits.append((box, f"{url}/_sandbox/faults"))
            procs.append(box)
            lanes.append(Lane(provider, url, f"{run_id}{provider[:2]}", counts[provider]))
        env = stack.clean_env(
            ORDERGUARD_DATABASE_URL=database_url,
            ORDERGUARD_PUBLIC_URL=base,
            **settings,
            **schedule.settings,
        )
        if not database_url.startswith("sqlite"):
            stack.migrate(work, env)
        api = stack.api(work, env, port, worker=True, wait=False)
        procs.append(api)
        for box, url in waits:
            stack.wait_until_up(box, url)
        stack.wait_until_up(api, f"{base}/v1/orders?limit=1")
        placed_in, resolved_in = await _drive(
            options, seed, base, lanes, database_url, schedule.client_timeout_s
        )
        console.print(f"final sweep: {schedule.sweep(work, env)}")
        db = await connect(database_url, pool_size=2)
        try:
            snapshots = [await audit.snapshot(db, lane.prefix) for lane in lanes]
        finally:
            await db.close()
        ledgers = [stack.ledger(lane.sandbox_url) for lane in lanes]
        faults = _faults(lanes)
        raced = {lane.provider: _raced(lane) for lane in lanes}
    finally:
        for proc in reversed(procs):
            proc.stop()
    return _report(
        options,
        seed,
        lanes,
        snapshots,
        ledgers,
        faults,
        raced,
        database="postgresql" if database_url.startswith("postgres") else "sqlite",
        placed_in_s=placed_in,
        resolved_in_s=resolved_in,
        schedule=schedule.summary,
    )


def _raced(lane: Lane) -> frozenset[str]:
    """The trades a wallet sandbox paid as the shop closed them (its ``close_race`` fault:
    the shopper's payment landing at that moment), from the log of what it injected."""
    if lane.provider == CARD:
        return frozenset()
    log = stack.fault_log(lane.sandbox_url)
    return frozenset(str(e["detail"]) for e in log if e.get("kind") == "close_race")


def _faults(lanes: list[Lane]) -> dict[str, int]:
    """Faults each sandbox injected, by ``provider:kind``."""
    return {
        f"{lane.provider}:{kind}": int(n)
        for lane in lanes
        for kind, n in stack.fault_counts(lane.sandbox_url).items()
    }


async def _drive(
    options: DemoOptions,
    seed: int,
    base: str,
    lanes: list[Lane],
    database_url: str,
    client_timeout_s: float,
) -> tuple[float, float]:
    for lane in lanes:
        if lane.provider == CARD:
            lane.simulator = ShopperSimulator(
                base,
                seed=seed,
                client_timeout_s=client_timeout_s,
                concurrency=options.concurrency,
                run_id=lane.run_id,
                refund_share=options.refund_share,
                paid_within_s=options.paid_within_s,
            )
        else:
            lane.simulator = WalletShoppers(
                base,
                provider=lane.provider,
                wallet_url=lane.sandbox_url,
                seed=seed,
                client_timeout_s=client_timeout_s,
                action_expiry_s=options.action_expiry_s,
                concurrency=options.concurrency,
                run_id=lane.run_id,
                refund_share=options.refund_share,
            )
    started = time.monotonic()
    running = [
        asyncio.create_task(lane.simulator.run(lane.count))
        for lane in lanes
        if lane.simulator is not None
    ]
    db = await connect(database_url, pool_size=2)
    try:
        deadline = time.monotonic() + options.settle_timeout_s
        placed_in = 0.0
        while True:
            await asyncio.sleep(0.5)
            if not placed_in and all(t.done() for t in running):
                placed_in = time.monotonic() - started
            wait_for = timedelta(seconds=options.action_expiry_s + 12)
            open_ = [
                o
                for lane in lanes
                for o in (await audit.snapshot(db, lane.prefix)).unresolved(
                    datetime.now(UTC), action_expiry=wait_for
                )
            ]
            if (not open_ and all(t.done() for t in running)) or time.monotonic() > deadline:
                break
        for lane, task in zip(lanes, running, strict=True):
            lane.stats = await task
    finally:
        for task in running:
            task.cancel()
        await db.close()
    return placed_in or time.monotonic() - started, time.monotonic() - started


def _report(
    options: DemoOptions,
    seed: int,
    lanes: list[Lane],
    snapshots: list[audit.Snapshot],
    ledgers: list[dict[str, list[dict[str, Any]]]],
    faults: dict[str, int],
    raced: dict[str, frozenset[str]],
    **run: Any,
) -> audit.Report:
    """Every lane checked against its own ledger, then one report of them all."""
    invariants: dict[str, list[str]] = {name: [] for name in audit.INVARIANTS}
    books: list[dict[str, list[dict[str, Any]]]] = []
    owners: list[audit.Owner] = []
    per_provider: dict[str, Any] = {}
    for lane, snap, ledger in zip(lanes, snapshots, ledgers, strict=True):
        if lane.provider == CARD:
            book, owner = ledger, audit.by_customer(lane.stats)
            found = audit.check(lane.stats, snap, book)
        else:
            book = wallet_audit.as_charges(lane.provider, ledger)
            owner = wallet_audit.by_order(lane.stats)
            found = audit.check(
                lane.stats,
                snap,
                book,
                owner=owner,
                misled=_misled_at(lane.simulator, raced[lane.provider]),
            )
        books.append(book)
        owners.append(owner)
        for name, ids in found.items():
            invariants[name] += ids
        per_provider[lane.provider] = {
            "checkouts": len(lane.stats.checkouts),
            "behaviours": dict(lane.stats.behaviours),
            "charges": len(book.get("charges", [])),
            "refunds": len(book.get("refunds", [])),
            "final_states": dict(Counter(o.state for o in snap.orders.values())),
            "invariants": {name: len(ids) for name, ids in found.items()},
            **_wallet_pays(lane),
            "paid_in_close_race": len(raced[lane.provider]),
            "refund_notifications_dropped": _refund_news_dropped(ledger),
        }
    shoppers = ShopperStats(
        checkouts=[c for lane in lanes for c in lane.stats.checkouts],
        client_troubles=sum((lane.stats.client_troubles for lane in lanes), Counter()),
    )
    merged = audit.Snapshot(
        orders={k: v for snap in snapshots for k, v in snap.orders.items()},
        all_ids=set().union(*(snap.all_ids for snap in snapshots)),
        sweep_findings=snapshots[0].sweep_findings,
        timeline_disagrees=[i for snap in snapshots for i in snap.timeline_disagrees],
    )
    book = {
        "charges": [c for b in books for c in b.get("charges", [])],
        "refunds": [r for b in books for r in b.get("refunds", [])],
    }

    def anyone(charge: dict[str, Any]) -> Checkout | None:
        return next((c for c in (find(charge) for find in owners) if c is not None), None)

    report = audit.build_report(
        shoppers,
        merged,
        book,
        faults,
        seed=seed,
        invariants={name: list(dict.fromkeys(ids)) for name, ids in invariants.items()},
        owner=anyone,
        **run,
    )
    report.extra["provider"] = options.provider
    report.extra["providers"] = per_provider
    return report


def _misled_at(simulator: ShopperSimulator | None, raced: frozenset[str]) -> audit.Misled | None:
    if not isinstance(simulator, WalletShoppers):
        return None
    wallet = simulator.wallet
    return lambda checkout, finals: wallet_misled(
        checkout, wallet[checkout.reference], finals, raced
    )


def _refund_news_dropped(ledger: dict[str, list[dict[str, Any]]]) -> int:
    """Refund notifications the wallet's storm dropped (WeChat Pay's ``REFUND.*``; an
    Alipay refund is answered at once and sends none): each left a refund ``pending`` in
    orderguard until the worker's refund lookups asked the wallet."""
    return sum(
        1
        for sent in ledger.get("notifications", [])
        if str(sent.get("event_type", "")).startswith("REFUND.")
        and "dropped" in (sent.get("faults") or [])
    )


def _wallet_pays(lane: Lane) -> dict[str, Any]:
    """What the wallet answered the shoppers' payments: taken, refused (by its code)."""
    if not isinstance(lane.simulator, WalletShoppers):
        return {}
    pays = [p for record in lane.simulator.wallet.values() for p in record.pays]
    return {
        "wallet_payments_taken": sum(1 for p in pays if p.accepted),
        "wallet_payments_refused": dict(Counter(p.refusal for p in pays if p.accepted is False)),
    }
