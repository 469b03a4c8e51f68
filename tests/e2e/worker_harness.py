"""Processes and probes for the worker and storm end-to-end tests.

* :class:`Proc` runs one ``orderguard`` subcommand (``worker``, ``sandbox-provider``) in
  the test's directory with its output in a log file there.
* :func:`sandbox_process` runs ``orderguard sandbox-provider`` and gives its admin client.
* :func:`seed_stuck_orders` writes orders stuck in ``payment_unknown`` through the storage
  API, exactly as the product leaves them after a charge call whose answer was lost; for
  some of them the charge really happened at the sandbox (timeout after the charge).
* :class:`Db` reads the orderguard database directly (SQLite or PostgreSQL): states,
  leases, heartbeats and timeline, the DB side of the oracle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from orderguard.api.server import free_port
from orderguard.bootstrap import configured_providers, wire
from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState
from orderguard.services.snapshot import snapshot_metadata
from tests.conftest import open_storage
from tests.e2e.payment_harness import Sandbox
from tests.e2e.procs import ORDERGUARD, clean_env
from tests.factories import new_order

VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"
#: Any ``sk_test_`` key is accepted by the sandbox.
API_KEY = "sk_test_x"
#: Settings every worker in these tests runs with: the recheck schedule a thousand times
#: faster, five rounds a second.
FAST_WORKER = {"ORDERGUARD_RECHECK_SCALE": "0.001", "ORDERGUARD_WORKER_ROUND_S": "0.2"}
#: How long a worker holds an order it checks (``janitor_lease_s``), in seconds.
LEASE_S = 3.0


@dataclass
class Proc:
    """One ``orderguard ARGS...`` process, output in ``cwd/<name>.log``."""

    name: str
    args: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Proc:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [ORDERGUARD, *self.args],
                env=dict(self.env),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or ``None`` if still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; always reaps the process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            if self.wait(10) is None:
                self.process.kill()
        self.process.wait(10)


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to put started processes in; every one is stopped at the end."""
    procs: list[Proc] = []
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@contextmanager
def sandbox_process(
    cwd: Path,
    *,
    faults: str = "none",
    seed: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_workers_e2e",
) -> Iterator[tuple[Sandbox, Proc]]:
    """``orderguard sandbox-provider`` on a free port, its ledger in ``cwd``."""
    port = free_port()
    args = [
        "sandbox-provider",
        "--port",
        str(port),
        "--faults",
        faults,
        "--seed",
        str(seed),
        "--db",
        str(cwd / "provider.db"),
        "--webhook-secret",
        webhook_secret,
    ]
    if webhook_url:
        args += ["--webhook-url", webhook_url]
    proc = Proc("sandbox", args, clean_env("sqlite:///unused.db"), cwd).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.alive(), f"sandbox-provider exited:\n{proc.log()}"
            try:
                httpx.get(f"{url}/_sandbox/faults", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"sandbox did not start:\n{proc.log()}"
                time.sleep(0.05)
        yield Sandbox("stripe", url), proc
    finally:
        proc.stop()


def worker_env(database_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """The environment of an ``orderguard worker`` charging at the sandbox."""
    return clean_env(
        database_url,
        ORDERGUARD_STRIPE_API_KEY=API_KEY,
        ORDERGUARD_STRIPE_BASE_URL=sandbox_url,
        ORDERGUARD_JANITOR_LEASE_S=str(LEASE_S),
        **FAST_WORKER,
        **extra,
    )


def start_worker(procs: list[Proc], env: Mapping[str, str], cwd: Path, name: str) -> Proc:
    proc = Proc(name, ["worker"], env, cwd).start()
    procs.append(proc)
    return proc


@dataclass(frozen=True)
class Stuck:
    """An order seeded in ``payment_unknown`` and its one attempt."""

    order_id: str
    attempt_id: str
    amount: int
    charged: bool


async def seed_stuck_orders(
    database_url: str, sandbox_url: str, count: int, *, charged_every: int = 2
) -> list[Stuck]:
    """``count`` orders in ``payment_unknown``; every ``charged_every``-th one was charged.

    Each order is placed, given an attempt at provider ``stripe`` (key
    ``orderguard-<attempt id>``) and moved to ``payment_pending`` and then, with the attempt
    ``unknown``, to ``payment_unknown``, as the product does when a charge call times out.
    The charged ones are then really sent to the sandbox by the product's own
    ``Payments.send`` (same key, amount, return URL and snapshot metadata a worker sends);
    its answer is thrown away, as if it had been lost.
    """
    settings = Settings(
        database_url=database_url, stripe_api_key=API_KEY, stripe_base_url=sandbox_url
    )
    storage = await open_storage(database_url)
    resources = ExitStack()
    container = wire(settings, storage, configured_providers(settings, resources))
    payments = container.payments
    seeded: list[Stuck] = []
    to_charge = []
    try:
        for i in range(count):
            now = datetime.now(UTC)
            order = new_order(reference=f"stuck-{i}-{now.timestamp()}", at=now)
            attempt = payments.prepare(order, VISA, cause=Cause.API, at=now)
            assert attempt is not None and attempt.provider == "stripe"
            assert attempt.idempotency_key == f"orderguard-{attempt.id}"
            lost = Outcome(AttemptState.UNKNOWN, reason="no answer within the time budget")
            payments.settle(order, attempt.id, lost, cause=Cause.API, at=now)
            assert str(order.state) == "payment_unknown"
            async with storage() as uow:
                await uow.orders.add(order)
                await uow.commit()
            charged = i % charged_every == 0
            seeded.append(Stuck(order.id, attempt.id, attempt.amount, charged))
            if charged:
                assert snapshot_metadata(order, attempt.id)["order_id"] == order.id
                to_charge.append((order, attempt))
        gate = asyncio.Semaphore(16)

        async def charge(order: Any, attempt: Any) -> None:
            async with gate:
                outcome = await payments.send(order, attempt)
            assert outcome.state is AttemptState.SUCCEEDED, outcome

        await asyncio.gather(*(charge(o, a) for o, a in to_charge))
    finally:
        await container.close()
    return seeded


@dataclass
class Db:
    """Direct reads of the orderguard database (SQLite file or PostgreSQL)."""

    url: str
    _pg: Any = field(default=None, repr=False)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.url.startswith("sqlite"):
            path = self.url.removeprefix("sqlite:///")
            with sqlite3.connect(path, timeout=10) as conn:
                return list(conn.execute(sql.replace("%s", "?"), params).fetchall())
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def states(self) -> Counter[str]:
        return Counter(
            {s: n for s, n in self._rows("SELECT state, COUNT(*) FROM orders GROUP BY state")}
        )

    def order_states(self) -> dict[str, str]:
        return dict(self._rows("SELECT id, state FROM orders"))  # type: ignore[arg-type]

    def flagged(self) -> dict[str, str]:
        return dict(self._rows("SELECT id, flag_reason FROM orders WHERE flag_reason IS NOT NULL"))  # type: ignore[arg-type]

    def lease_owners(self) -> Counter[str]:
        rows = self._rows(
            "SELECT lease_owner, COUNT(*) FROM orders WHERE lease_owner IS NOT NULL "
            "GROUP BY lease_owner"
        )
        return Counter({owner: n for owner, n in rows})

    def leased_by(self, owner: str) -> list[str]:
        rows = self._rows("SELECT id FROM orders WHERE lease_owner = %s", (owner,))
        return [r[0] for r in rows]

    def heartbeats(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT worker_id FROM worker_heartbeats")]

    def transitions(self) -> list[tuple[str, str | None, str, str]]:
        """Every state change: order id, from, to, cause."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._rows(
                "SELECT order_id, from_state, to_state, cause FROM timeline "
                "WHERE kind = 'state_changed' ORDER BY seq"
            )
        ]

    def attempts(self) -> list[tuple[str, str, str, int, str | None]]:
        """Every attempt: order id, attempt id, state, amount, provider ref."""
        return [
            (r[0], r[1], r[2], r[3], r[4])
            for r in self._rows(
                "SELECT order_id, id, state, amount, provider_ref FROM payment_attempts"
            )
        ]


def pid_of(worker_id: str) -> int:
    """The process id inside a worker id (``host-pid-suffix``)."""
    return int(worker_id.rsplit("-", 2)[-2])


def succeeded_by_order(book: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Succeeded charges grouped by the order id in their metadata (``None``: no order)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for charge in book["charges"]:
        if charge["status"] == "succeeded":
            found.setdefault(charge["metadata"].get("order_id"), []).append(charge)
    return found


def intents_by_attempt(book: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """PaymentIntents grouped by the attempt id in their metadata."""
    found: dict[str, list[dict[str, Any]]] = {}
    for intent in book["payment_intents"]:
        found.setdefault(intent["metadata"].get("attempt_id"), []).append(intent)
    return found
