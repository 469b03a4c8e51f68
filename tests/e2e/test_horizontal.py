"""The deployment that outgrows one host (``docs/deployment.md``), on real processes: two API
hosts (``orderguard serve --processes 2 --no-worker`` each, behind a load balancer), two
worker hosts (``orderguard worker``), one PostgreSQL and NATS JetStream, under the demo's
storm.

The shoppers reach the hosts through a round-robin TCP balancer (a retry of a checkout may
land on the other host, as behind a real one); the sandbox provider runs in its own process
with the demo's storm profile and sends its webhooks through the balancer too. The demo's
own audit then checks every invariant against the sandbox's ledger and the database. On
top of it:

* every event the outbox committed is in the stream once: G8 promises at-least-once
  delivery with the event id as ``Nats-Msg-Id``, and JetStream drops a re-publish inside
  its duplicate window (two minutes by default, longer than this run), so the stream holds
  each event id exactly once;
* both workers did the janitor's work: who held a lease on which order is read from the
  ``orders`` table while the run goes on, and what each resolved from the timeline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rich.console import Console

from orderguard.api.server import free_port
from orderguard.demo import run, stack
from orderguard.demo.audit import INVARIANTS
from orderguard.demo.options import DemoOptions
from orderguard.providers import labs
from tests.e2e.balancer import Balancer, balancing
from tests.e2e.worker_harness import pid_of
from tests.nats_kit import Stream, nats_stream  # noqa: F401 (a fixture)
from tests.seeds import demo_seeds

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(400)]

#: API hosts, API processes on each, worker hosts.
HOSTS, PROCESSES, WORKERS = 2, 2, 2
#: Checkouts of the run: enough for every behaviour and storm fault to occur.
CHECKOUTS = 120
#: Seconds the stream may take to catch up with the outbox after the orders settled.
STREAM_CATCH_UP_S = 60.0


class LeaseWatch:
    """Who holds a lease on which order, read from the ``orders`` table every few
    milliseconds while the run goes on (a lease is cleared when its work is done)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        #: Order ids by the worker id that held a lease on them.
        self.orders: defaultdict[str, set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lease-watch", daemon=True)

    def _watch(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT lease_owner, id FROM orders WHERE lease_owner IS NOT NULL"
                ).fetchall()
                for owner, order_id in rows:
                    self.orders[owner].add(order_id)
                time.sleep(0.02)

    def __enter__(self) -> LeaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def janitor_resolved(database_url: str) -> set[str]:
    """Orders whose state the janitor (a worker) changed, from their timelines."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT order_id FROM timeline "
            "WHERE kind = 'state_changed' AND cause = 'janitor'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def committed_events(database_url: str) -> dict[str, tuple[str, str]]:
    """Every event the outbox holds (this test's database is its own): id -> (order, type)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, order_id, type FROM outbox").fetchall()
    return {str(i): (str(o), str(t)) for i, o, t in rows}


@dataclass
class Running:
    """The started deployment."""

    #: What the storm is sent to: the balancer's address, the database, the sandbox.
    target: run.Target
    balancer: Balancer
    hosts: list[stack.Proc]
    workers: list[stack.Proc]


def held_charges(book: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Orders the provider holds money for (a succeeded charge not refunded in full), from
    its ledger: each must have been paid, and said so on the stream."""
    return {
        str(charge["metadata"].get("order_id"))
        for charge in book["charges"]
        if charge["status"] == "succeeded" and charge["amount_refunded"] < charge["amount"]
    }


@contextmanager
def deployment(
    work: Path, database_url: str, stream: Stream, seed: int, console: Console
) -> Iterator[Running]:
    """The sandbox, two API hosts behind a balancer and two worker hosts, all started;
    stopped afterwards."""
    ports = [free_port() for _ in range(HOSTS)]
    with ExitStack() as started, balancing([("127.0.0.1", p) for p in ports]) as balancer:
        profile = work / "storm.toml"
        profile.write_text(run.STORM_TOML)
        hook = f"{balancer.url}/v1/webhooks/{labs.sandbox_route()}"
        box, sandbox_url = stack.sandbox(work, profile=profile, seed=seed, webhook_url=hook)
        started.callback(box.stop)
        settings = run.service_settings(DemoOptions())
        # each host has its own settings file in a deployment; here they share one
        # environment: what must match across hosts (database, secrets, NATS) does
        env = stack.service_env(
            database_url, sandbox_url, balancer.url, **settings, **stream.env(),
            ORDERGUARD_READY_REQUIRES_WORKER="false",
        )  # fmt: skip
        hosts = [
            stack.api(work, env, port, worker=False, name=f"api-{n}", wait=False,
                      processes=PROCESSES)
            for n, port in enumerate(ports)
        ]  # fmt: skip
        workers = [stack.worker(work, env, name=f"worker-{n}") for n in range(WORKERS)]
        for proc in (*hosts, *workers):
            started.callback(proc.stop)
        for proc, port in zip(hosts, ports, strict=True):
            stack.wait_until_up(proc, f"http://127.0.0.1:{port}/v1/orders?limit=1", within_s=90)
        console.print(f"hosts on {ports} behind {balancer.url}; workers started")
        target = run.Target(balancer.url, database_url, sandbox_url, env, work)
        yield Running(target, balancer, hosts, workers)


@pytest.mark.parametrize("seed", demo_seeds([20]))
async def test_two_api_hosts_and_two_workers_on_one_postgresql_hold_every_invariant(
    pg_url: str, tmp_path: Path, stream: Stream, seed: int
) -> None:
    console = Console(stderr=True)
    options = DemoOptions(orders=CHECKOUTS, concurrency=32, settle_timeout_s=120.0)
    started = time.monotonic()
    with deployment(tmp_path, pg_url, stream, seed, console) as running:
        with LeaseWatch(pg_url) as leases:
            report = await run.storm(options, seed, running.target, console, run_id="horizontal")
        alive = {p.name: p.alive() for p in (*running.hosts, *running.workers)}
        held = held_charges(stack.ledger(running.target.sandbox_url))
        expected = committed_events(pg_url)
        messages = await _stream_caught_up(stream, set(expected))
        worker_pids = {w.name: w.process.pid for w in running.workers if w.process is not None}
    balancer = running.balancer
    took = time.monotonic() - started
    print(f"\nhorizontal run: {took:.1f} s; balancer connections {dict(balancer.connections)}")
    print({k: v for k, v in report.as_json().items() if k not in {"schedule", "violations"}})

    # every invariant of the demo's audit, the refunds' included
    assert report.invariants == {name: [] for name in INVARIANTS}, report.as_json()["violations"]
    assert report.acknowledged >= CHECKOUTS * 0.8, report.as_json()
    for kind in ("timeout_after", "error_after", "webhook_dropped", "webhook_duplicated"):
        assert report.faults.get(kind, 0) > 0, f"the storm injected no {kind}: {report.faults}"
    assert report.final_states.get("paid", 0) > CHECKOUTS / 2, report.final_states
    # both API hosts were sent shoppers and webhooks; no process of the deployment died
    assert all(balancer.connections[port] > 10 for _, port in balancer.upstreams), (
        balancer.connections
    )
    assert alive == dict.fromkeys(alive, True), alive

    # the stream: each committed event exactly once, under its own id, on its subject
    ids = Counter(headers.get("Nats-Msg-Id") for _, headers, _ in messages)
    assert [i for i, n in ids.items() if n > 1] == [], "an event id published twice"
    assert set(ids) == set(expected), f"missing from the stream: {set(expected) - set(ids)}"
    for subject, headers, document in messages:
        order_id, event_type = expected[headers["Nats-Msg-Id"]]
        assert document["id"] == headers["Nats-Msg-Id"]
        assert document["type"] == event_type
        assert subject == f"{stream.prefix}.{event_type.removeprefix('order.')}"
        assert isinstance(document["data"], dict) and document["data"]["order_id"] == order_id
    # ... and every order the provider holds money for was announced paid
    paid = {
        str(document["data"]["order_id"])
        for _, _, document in messages
        if document["type"] == "order.paid" and isinstance(document["data"], dict)
    }
    assert held and held <= paid, f"held money, never announced paid: {held - paid}"

    # the workers shared the janitor's work: each held leases on orders it then resolved
    by_worker = _leases_by_worker(leases, worker_pids)
    resolved = janitor_resolved(pg_url)
    print({name: (len(held), len(held & resolved)) for name, held in by_worker.items()})
    assert set(by_worker) == set(worker_pids), f"leases held by {set(leases.orders)}"
    for name, held in by_worker.items():
        assert held & resolved, f"{name} resolved no order of those it leased"


def _leases_by_worker(leases: LeaseWatch, pids: dict[str, int]) -> dict[str, set[str]]:
    """The orders each worker process held a lease on; a lease of anyone else fails."""
    names = {pid: name for name, pid in pids.items()}
    by_worker: dict[str, set[str]] = {}
    for owner, orders in leases.orders.items():
        assert pid_of(owner) in names, f"a lease held by {owner}, not a worker of the test"
        by_worker.setdefault(names[pid_of(owner)], set()).update(orders)
    return by_worker


async def _stream_caught_up(
    stream: Stream, expected: set[str]
) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    """The stream's messages once every expected event id is among them (or the deadline
    passed: the assertions then say what is missing)."""
    deadline = time.monotonic() + STREAM_CATCH_UP_S
    while True:
        messages = await stream.messages()
        seen = {headers.get("Nats-Msg-Id") for _, headers, _ in messages}
        if expected <= seen or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.5)
