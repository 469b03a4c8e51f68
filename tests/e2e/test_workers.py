"""``orderguard worker`` processes side by side (G3, G5): stuck orders are shared out by
leases, each paid exactly once, a killed worker's orders are picked up after its leases
expire, SIGTERM is graceful, and on SQLite only one worker works.

The provider is a real ``orderguard sandbox-provider`` process; its ``/ledger`` is the
oracle for what was charged. 500 orders are seeded in ``payment_unknown`` through the
storage API: half of them were really charged (the answer was lost: timeout after the
charge), half never reached the provider. The only honest way to resolve them is to ask
the provider and, for the ones it has no record of, re-send with the original key.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from orderguard.demo.stack import ledger
from tests.e2e.worker_harness import (
    LEASE_S,
    Db,
    Proc,
    Stuck,
    intents_by_attempt,
    pid_of,
    processes,
    sandbox_process,
    seed_stuck_orders,
    start_worker,
    succeeded_by_order,
    worker_env,
)

pytestmark = pytest.mark.slow

ORDERS = 500
#: The longest the workers may take to resolve every seeded order.
SETTLE_TIMEOUT_S = 90.0


def _logs(workers: list[Proc]) -> str:
    return "\n".join(f"--- {w.name} (pid {w.pid})\n{w.log()[-3000:]}" for w in workers)


class Watch:
    """Polls the database until every order is paid, noting who held leases meanwhile."""

    def __init__(self, db: Db, workers: list[Proc]) -> None:
        self.db = db
        self.workers = workers
        #: Worker ids seen holding at least one lease, with the most leases seen at once.
        self.owners: Counter[str] = Counter()
        self.states: Counter[str] = Counter()

    def poll(self) -> Counter[str]:
        for owner, n in self.db.lease_owners().items():
            self.owners[owner] = max(self.owners[owner], n)
        self.states = self.db.states()
        return self.states

    def until(self, done: object, *, timeout: float, alive: list[Proc] | None = None) -> float:
        """Poll until ``done(states)``; the workers in ``alive`` must not exit meanwhile."""
        started = time.monotonic()
        while not done(self.poll()):  # type: ignore[operator]
            for w in alive if alive is not None else self.workers:
                assert w.alive(), f"{w.name} exited early:\n{_logs(self.workers)}"
            assert time.monotonic() - started < timeout, (
                f"not done after {timeout}s: {dict(self.states)}\n{_logs(self.workers)}"
            )
            time.sleep(0.1)
        return time.monotonic() - started


def all_paid(states: Counter[str]) -> bool:
    return states["paid"] == ORDERS


def _seed(pg_url: str, sandbox_url: str) -> list[Stuck]:
    stuck = asyncio.run(seed_stuck_orders(pg_url, sandbox_url, ORDERS))
    book = ledger(sandbox_url)
    charged = {s.order_id for s in stuck if s.charged}
    # the precondition: half the orders were charged and are unknown to orderguard
    assert len(charged) == ORDERS // 2
    assert set(succeeded_by_order(book)) == charged
    assert Db(pg_url).states() == Counter({"payment_unknown": ORDERS})
    return stuck


def assert_each_order_paid_exactly_once(
    db: Db, sandbox_url: str, stuck: list[Stuck], *, dead: str | None = None
) -> None:
    """The ledger, the attempts and the timeline all say: one charge, one payment.

    Live workers gave every lease back; a ``dead`` worker may have left one behind on an
    order it resolved just before it died (nothing claims a paid order, so it stays).
    """
    book = ledger(sandbox_url)
    ids = {s.order_id for s in stuck}
    charges = succeeded_by_order(book)
    doubles = {o: len(c) for o, c in charges.items() if len(c) != 1}
    assert not doubles, f"orders with other than one succeeded charge: {doubles}"
    assert set(charges) == ids, "every order charged, and no charge for anything else"
    for s in stuck:
        [charge] = charges[s.order_id]
        assert (charge["amount"], charge["amount_refunded"]) == (s.amount, 0)
        assert charge["metadata"]["attempt_id"] == s.attempt_id
    intents = intents_by_attempt(book)
    assert set(intents) == {s.attempt_id for s in stuck}
    extra = {a: len(pis) for a, pis in intents.items() if len(pis) != 1}
    assert not extra, f"attempts with more than one PaymentIntent (charged again): {extra}"
    assert len(book["payment_intents"]) == ORDERS
    refs = {a: pis[0]["id"] for a, pis in intents.items()}
    for order_id, attempt_id, state, _amount, provider_ref in db.attempts():
        assert order_id in ids
        assert (state, provider_ref) == ("succeeded", refs[attempt_id]), order_id
    to_paid = Counter(o for o, _, to, _ in db.transitions() if to == "paid")
    assert to_paid == Counter(dict.fromkeys(ids, 1)), "exactly one move to paid per order"
    causes = Counter((frm, cause) for _, frm, to, cause in db.transitions() if to == "paid")
    assert causes == Counter({("payment_unknown", "janitor"): ORDERS})
    assert db.flagged() == {}
    leftover = db.lease_owners()
    if dead is not None:
        leftover.pop(dead, None)
    assert leftover == Counter(), "every live worker gave its leases back"


@pytest.mark.postgres
@pytest.mark.parametrize("count", [2, 4])
def test_workers_share_stuck_orders_and_pay_each_exactly_once(
    pg_url: str, tmp_path: Path, count: int
) -> None:
    db = Db(pg_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        stuck = _seed(pg_url, box.url)
        env = worker_env(pg_url, box.url)
        workers = [start_worker(procs, env, tmp_path, f"worker-{i}") for i in range(count)]
        watch = Watch(db, workers)
        took = watch.until(all_paid, timeout=SETTLE_TIMEOUT_S)
        for w in workers:
            assert w.alive(), _logs(workers)
        assert_each_order_paid_exactly_once(db, box.url, stuck)
        beats = db.heartbeats()
    print(
        f"\n{count} workers paid {ORDERS} stuck orders in {took:.1f}s; "
        f"most leases held at once per worker: {dict(watch.owners)}"
    )
    pids = {w.pid for w in workers}
    assert sorted(pid_of(b) for b in beats) == sorted(pids), "one heartbeat per worker"
    # the work was shared: every worker held leases on orders at some point
    assert {pid_of(o) for o in watch.owners} == pids, (dict(watch.owners), _logs(workers))
    for w in workers:
        assert "started" in w.log() and "Traceback" not in w.log(), w.log()


@pytest.mark.postgres
def test_a_killed_workers_orders_are_resolved_by_the_others_after_its_leases_expire(
    pg_url: str, tmp_path: Path
) -> None:
    db = Db(pg_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        stuck = _seed(pg_url, box.url)
        env = worker_env(pg_url, box.url)
        workers = [start_worker(procs, env, tmp_path, f"worker-{i}") for i in range(4)]
        by_pid = {w.pid: w for w in workers}
        watch = Watch(db, workers)
        # mid-run: some orders paid, and a worker is holding leases on orders it checks
        victim, holder = _catch_holding_leases(db, watch, by_pid)
        victim.signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        killed_at = time.monotonic()
        orphaned = set(db.leased_by(holder))
        unpaid_then = {o for o, s in db.order_states().items() if s != "paid"}
        paid_at_kill = len(db.order_states()) - len(unpaid_then)
        assert paid_at_kill < ORDERS, "the kill came too late to be mid-run"
        survivors = [w for w in workers if w is not victim]
        watch.until(all_paid, timeout=SETTLE_TIMEOUT_S, alive=survivors)
        took = time.monotonic() - killed_at
        assert_each_order_paid_exactly_once(db, box.url, stuck, dead=holder)
        beats = db.heartbeats()
    print(
        f"\nkilled {victim.name} holding {len(orphaned)} leases with {paid_at_kill} paid; "
        f"the other 3 finished {ORDERS - paid_at_kill} more in {took:.1f}s "
        f"(lease {LEASE_S}s)"
    )
    assert orphaned, "the killed worker held leases (on orders it was checking) when it died"
    assert orphaned & unpaid_then, "some of its leased orders were still unresolved"
    assert holder in beats  # it had been working: its last heartbeat stays behind


@pytest.mark.postgres
def test_a_batch_that_outlasts_its_lease_never_crashes_a_worker(
    pg_url: str, tmp_path: Path
) -> None:
    """A slow provider makes a janitor batch (50 orders) take longer than the 3 s lease.

    Another worker then claims the orders not reached yet, and both may settle the same one;
    whoever comes second finds it ``paid``. That must be a no-op, not a crash.
    """
    db = Db(pg_url)
    count = 150
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        stuck = asyncio.run(seed_stuck_orders(pg_url, box.url, count, charged_every=count + 1))
        # every call ~80 ms: a never-charged order needs a search and a charge
        httpx.post(
            f"{box.url}/_sandbox/faults", json={"latency": 1.0, "latency_ms": [70, 90]}
        ).raise_for_status()
        env = worker_env(pg_url, box.url)
        workers = [start_worker(procs, env, tmp_path, f"worker-{i}") for i in range(2)]
        watch = Watch(db, workers)
        watch.until(lambda states: states["paid"] == count, timeout=SETTLE_TIMEOUT_S)
        book = ledger(box.url)
    charges = succeeded_by_order(book)
    assert {o: len(c) for o, c in charges.items()} == {s.order_id: 1 for s in stuck}


def _sqlite_env(url: str, box_url: str, tmp_path: Path) -> dict[str, str]:
    return worker_env(url, box_url)


def _wait_log(proc: Proc, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        assert time.monotonic() < deadline, f"{proc.name} never logged {text!r}:\n{proc.log()}"
        time.sleep(0.05)


def test_sigterm_stops_a_worker_gracefully_and_a_second_one_on_sqlite_stands_by(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Db(sqlite_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        stuck = asyncio.run(seed_stuck_orders(sqlite_url, box.url, 20))
        env = _sqlite_env(sqlite_url, box.url, tmp_path)
        first = start_worker(procs, env, tmp_path, "first")
        Watch(db, [first]).until(lambda states: states["paid"] == len(stuck), timeout=30)
        second = start_worker(procs, env, tmp_path, "second")
        _wait_log(second, "another worker is active")
        time.sleep(1.0)  # a few of the first worker's rounds
        assert first.alive(), first.log()
        [beat] = db.heartbeats()
        assert pid_of(beat) == first.pid, "only the first worker works (and beats)"
        assert "stands by" in second.log() and f"worker vm-{second.pid}" not in second.log()
        first.signal(signal.SIGTERM)
        sent = time.monotonic()
        # a worker that ignored SIGTERM would sleep and work round after round, forever: the
        # deadline is far from the fraction of a second it takes, and only a stop decides
        code = first.wait(60)
        took = time.monotonic() - sent
    print(f"\nSIGTERM -> exit {code} in {took:.2f}s")
    assert code == 0, first.log()
    assert "stopped after" in first.log() and "Traceback" not in first.log()
    assert "started" not in second.log().split("stands by")[0].split("orderguard.worker")[-1]


def test_sigterm_mid_round_with_a_slow_provider_stops_within_seconds(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Orchestrators SIGKILL after ~10 s; a worker must not finish a 50-order batch first."""
    db = Db(sqlite_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        asyncio.run(seed_stuck_orders(sqlite_url, box.url, 100, charged_every=101))
        # every check ~1 s (a search and a charge), and a lease far longer than the batch
        # takes (~6 s at 8 at once), so only SIGTERM, not the lease, can cut the batch short
        httpx.post(
            f"{box.url}/_sandbox/faults", json={"latency": 1.0, "latency_ms": [500, 500]}
        ).raise_for_status()
        env = {**_sqlite_env(sqlite_url, box.url, tmp_path), "ORDERGUARD_JANITOR_LEASE_S": "120"}
        worker = start_worker(procs, env, tmp_path, "w")
        Watch(db, [worker]).until(lambda states: states["paid"] >= 3, timeout=30)
        owner = [w for w in db.lease_owners() if pid_of(w) == worker.pid]
        assert owner, "mid-round: the worker holds leases"
        held = set(db.leased_by(owner[0]))
        worker.signal(signal.SIGTERM)
        sent = time.monotonic()
        code = worker.wait(60)  # far past the checks in flight; the count below decides
        took = time.monotonic() - sent
        left = db.leased_by(owner[0])
        after = db.order_states()
        states = db.states()
    print(f"\nSIGTERM mid-round -> exit {code} in {took:.2f}s; states {dict(states)}")
    assert code == 0, worker.log()
    unworked = {o for o in held if after[o] != "paid"}
    # the checks in flight finish; the rest of the batch it held is given back, not worked
    assert unworked, f"all {len(held)} leased orders were worked through after SIGTERM"
    assert left == [], "its leases were given back"


def test_a_worker_started_right_after_a_graceful_stop_takes_over(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A restart (deploy) on SQLite: the stopped worker's heartbeat must not keep the new one
    standing by, or no worker runs at all."""
    db = Db(sqlite_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        env = _sqlite_env(sqlite_url, box.url, tmp_path)
        old = start_worker(procs, env, tmp_path, "old")
        _wait_log(old, "started")
        time.sleep(0.5)
        old.signal(signal.SIGTERM)
        assert old.wait(10) == 0, old.log()
        new = start_worker(procs, env, tmp_path, "new")
        stuck = asyncio.run(seed_stuck_orders(sqlite_url, box.url, 10))
        Watch(db, [new]).until(lambda states: states["paid"] == len(stuck), timeout=30)


def test_the_janitor_lease_is_read_from_the_environment(sqlite_url: str, tmp_path: Path) -> None:
    """``ORDERGUARD_JANITOR_LEASE_S`` (a string in the environment) is taken as seconds."""
    db = Db(sqlite_url)
    with sandbox_process(tmp_path) as (box, _), processes() as procs:
        stuck = asyncio.run(seed_stuck_orders(sqlite_url, box.url, 4))
        env = worker_env(sqlite_url, box.url)
        assert env["ORDERGUARD_JANITOR_LEASE_S"] == "3.0"
        worker = start_worker(procs, env, tmp_path, "w")
        Watch(db, [worker]).until(lambda states: states["paid"] == len(stuck), timeout=30)


def _catch_holding_leases(db: Db, watch: Watch, by_pid: dict[int, Proc]) -> tuple[Proc, str]:
    """Mid-run (100 orders paid), a worker stopped (SIGSTOP) while it holds leases: a worker
    seen holding leases may release them before it can be killed, a stopped one cannot."""
    for _ in range(20):
        watch.until(
            lambda states: states["paid"] >= 100 and db.lease_owners(), timeout=SETTLE_TIMEOUT_S
        )
        # read again: the leases seen by the wait may be given back by now
        owners = db.lease_owners().most_common(1)
        if not owners:
            continue
        [(holder, _)] = owners
        victim = by_pid[pid_of(holder)]
        victim.signal(signal.SIGSTOP)
        if db.leased_by(holder):
            return victim, holder
        victim.signal(signal.SIGCONT)
    pytest.fail("no worker was caught holding a lease in 20 tries")
