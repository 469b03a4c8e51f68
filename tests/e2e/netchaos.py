"""Real network faults between orderguard's parts: the demo's storm of shoppers, with the
database, the provider sandbox, the API, the worker and the shoppers' browsers each in a
network namespace of their own (see :mod:`tests.e2e.netns`), and one cause of trouble
injected per scenario; afterwards the demo's invariants (the six, the refund one and the
rest of its audit) are checked against the database and the provider's ledger.

``make chaos`` runs every scenario at length and writes ``docs/chaos.md``;
``tests/e2e/test_network_faults.py`` runs them on a short schedule in CI. A run is seeded
(the shoppers' mix and each fault's moment); ``--seed N`` replays it.

    python -m tests.e2e.netchaos [--scenarios loss,api_db_partition] [--checkouts 300]
        [--seed N] [--report docs/chaos.md]

The shoppers run in a subprocess inside their namespace (this module's ``shop``
sub-command), so their requests cross the bridge like a browser's; the test's own reads
(the audit, the ledger) use the root namespace's door to the bridge, which no fault touches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from orderguard.demo import audit, run, stack
from orderguard.demo.shoppers import ShopperSimulator, ShopperStats
from tests.e2e.netns import REORDER_COUNTERS, Fault, Network
from tests.e2e.storm_wait import settled
from tests.pgcluster import _bin_dir

ROLES = ("db", "provider", "api", "worker", "shopper", "wan")
API_PORT = 8000
PROVIDER_PORT = 8100
PG_PORT = 5432
REPO = Path(__file__).resolve().parents[2]
#: Seconds the orders get to settle once the faults are healed and the shoppers are done.
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Scenario:
    """One cause of trouble: what it is, and how to inject it into a network."""

    name: str
    cause: str
    inject: Callable[[Network], list[Fault]]
    #: When the fault starts (seconds into the storm; drawn from the seed in this range),
    #: and how long it lasts (None: until the shoppers are done).
    start_s: tuple[float, float] = (0.0, 0.0)
    length_s: float | None = None
    #: (delay, jitter) in ms of a relay in the ``wan`` namespace that every exchange
    #: between the parts crosses (shoppers to the API, the API and the worker to the
    #: database and the provider, the provider's webhooks to the API) for the whole run.
    relay_ms: tuple[int, int] | None = None


def _loss_everywhere(net: Network) -> list[Fault]:
    """3 % of packets lost each way on every link the service uses."""
    links = {"api": ["db", "provider", "shopper"], "worker": ["db", "provider"]}
    return [net.loss(role, peers, 3) for role, peers in links.items()]


def _reorder_everywhere(net: Network) -> list[Fault]:
    """10 % of what the API, the worker, the provider and the database send held back and
    overtaken (see :meth:`Network.reorder`)."""
    return [net.reorder(role, 10) for role in ("api", "worker", "provider", "db")]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "loss",
            "packet loss: 3 % of packets lost each way between the API and the database, "
            "the provider and the shoppers, and between the worker and the database and "
            "the provider, for the whole storm",
            _loss_everywhere,
        ),
        Scenario(
            "latency",
            "latency and jitter: every exchange between the parts crosses a relay in a "
            "namespace of its own that holds each chunk 40 ± 30 ms, for the whole storm",
            lambda net: [],
            relay_ms=(40, 30),
        ),
        Scenario(
            "reordering",
            "packet reordering: 10 % of the packets the API, the worker, the provider and "
            "the database send, drawn at random, held in a slow queue (1 Mbit/s) while the "
            "packets after them go on and overtake them, for the whole storm",
            _reorder_everywhere,
        ),
        Scenario(
            "api_db_partition",
            "a partition between the API and the database: nothing passes either way for "
            "3 s in the middle of the storm",
            lambda net: [net.partition("api", "db")],
            start_s=(0.5, 1.5),
            length_s=3.0,
        ),
        Scenario(
            "api_provider_partition",
            "a partition between the API and the provider in the middle of charges: "
            "nothing passes either way for 3 s while shoppers pay",
            lambda net: [net.partition("api", "provider")],
            start_s=(0.5, 1.5),
            length_s=3.0,
        ),
        Scenario(
            "answers_lost",
            "the shoppers' connection dropped after the request reached the server: for "
            "3 s every answer of the API to the shoppers is lost, their requests still "
            "arrive",
            lambda net: [net.drop_answers("api", "shopper", API_PORT)],
            start_s=(0.5, 1.5),
            length_s=3.0,
        ),
    )
}


@dataclass
class Outcome:
    """What one scenario did and found."""

    scenario: Scenario
    seed: int
    checkouts: int
    faults: list[Fault] = field(default_factory=list)
    window_s: tuple[float, float] | None = None
    storm_s: float = 0.0
    resolution_s: float = 0.0
    report: audit.Report | None = None
    #: What the relay did (``latency``): connections, chunks, bytes, mean_delay_ms.
    relay: dict[str, float] = field(default_factory=dict)
    #: The kernel's TCP reordering counters (:data:`REORDER_COUNTERS`), summed over every
    #: part's namespace, from the fault's injection to its heal.
    tcp: dict[str, int] = field(default_factory=dict)

    @property
    def held(self) -> int:
        """Packets held back and overtaken (``reorder`` faults)."""
        return sum(f.held for f in self.faults)

    @property
    def dropped(self) -> int:
        return sum(f.dropped for f in self.faults)

    @property
    def broken(self) -> dict[str, list[str]]:
        if self.report is None:
            return {}
        return {name: ids for name, ids in self.report.invariants.items() if ids}


class _PostgresInNamespace:
    """A throwaway PostgreSQL cluster listening on the ``db`` namespace's address only."""

    def __init__(self, net: Network, work: Path) -> None:
        self.net, self.work = net, work
        # its own folder: a test's tmp_path sits in folders the postgres user cannot enter
        self.base = Path(tempfile.mkdtemp(prefix="og-netchaos-pg-"))
        self.data = self.base / "data"
        self.bin = _bin_dir()
        self.run_as = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.net.ip('db')}:{PG_PORT}/orderguard"

    def _pg(self, *args: str, in_ns: bool) -> None:
        argv = [str(self.bin / args[0]), *args[1:]]
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        if in_ns:
            argv = self.net.command("db", argv)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise stack.StackError(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._pg(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", in_ns=False,
        )  # fmt: skip
        subnet = self.net.ip("db").rsplit(".", 1)[0] + ".0/24"
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet} trust\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{self.net.ip('db')}'\nport = {PG_PORT}\n"
                f"unix_socket_directories = '{self.data}'\n"
                "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
            )
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "postgres.log"), "-w",
            "-t", "60", "start", in_ns=True,
        )  # fmt: skip
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE orderguard")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._pg(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", in_ns=True
                )
            except stack.StackError:
                pass


@dataclass
class _Stack:
    net: Network
    work: Path
    env: dict[str, str]
    sandbox_url: str
    #: The API's own address, and the one shoppers and webhooks use (the relay's, if any).
    api_url: str
    shop_url: str
    db_url: str
    api_key: str
    procs: list[stack.Proc]
    relay: _RelayProc | None = None


class _RelayProc:
    """``tests.e2e.delay_relay`` in the ``wan`` namespace, relaying to every part."""

    def __init__(self, net: Network, work: Path, seed: int, delay_ms: int, jitter_ms: int):
        wan = net.ip("wan")
        routes = [
            f"{wan}:{API_PORT}={net.ip('api')}:{API_PORT}",
            f"{wan}:{PG_PORT}={net.ip('db')}:{PG_PORT}",
            f"{wan}:{PROVIDER_PORT}={net.ip('provider')}:{PROVIDER_PORT}",
        ]
        self.stats_path = work / "relay.json"
        argv = [
            sys.executable, "-m", "tests.e2e.delay_relay", "--delay-ms", str(delay_ms),
            "--jitter-ms", str(jitter_ms), "--seed", str(seed), "--stats", str(self.stats_path),
        ] + [a for r in routes for a in ("--route", r)]  # fmt: skip
        env = stack.clean_env(PYTHONPATH=_pythonpath())
        with (work / "relay.log").open("ab") as log:
            self.process = subprocess.Popen(
                net.command("wan", argv), env=env, cwd=work, stdout=log, stderr=log
            )
        self.stats: dict[str, float] = {}

    def stop(self) -> None:
        """SIGTERM; its stats (connections, chunks, mean delay) are read back."""
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.stats_path.exists():
            self.stats = json.loads(self.stats_path.read_text())


def _pythonpath() -> str:
    return os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])


@contextmanager
def _stack(
    net: Network, work: Path, seed: int, relay_ms: tuple[int, int] | None = None
) -> Iterator[_Stack]:
    """The database, the sandbox, the API and the worker, each in its namespace (and the
    relay between them all, with ``relay_ms``)."""
    db = _PostgresInNamespace(net, work)
    procs: list[stack.Proc] = []
    relay = _RelayProc(net, work, seed, *relay_ms) if relay_ms else None
    try:
        db.start()
        reach = net.ip("wan") if relay else None  # every part reached through the relay
        api_url = f"http://{net.ip('api')}:{API_PORT}"
        shop_url = f"http://{reach or net.ip('api')}:{API_PORT}"
        sandbox_url = f"http://{net.ip('provider')}:{PROVIDER_PORT}"
        charge_url = f"http://{reach or net.ip('provider')}:{PROVIDER_PORT}"
        service_db_url = db.url.replace(net.ip("db"), reach) if reach else db.url
        box = stack.Proc(
            "sandbox",
            [
                "sandbox-provider",
                "--host",
                net.ip("provider"),
                "--port",
                str(PROVIDER_PORT),
                "--faults",
                "none",
                "--seed",
                str(seed),
                "--db",
                str(work / "sandbox.db"),
                "--webhook-url",
                f"{shop_url}/v1/webhooks/stripe",
                "--webhook-secret",
                stack.WEBHOOK_SECRET,
            ],
            stack.clean_env(),
            work,
            wrap=net.command("provider", []),
        ).start()
        procs.append(box)
        settings = run.service_settings(run.DemoOptions())
        env = stack.service_env(service_db_url, charge_url, shop_url, **settings)
        direct = {**env, "ORDERGUARD_DATABASE_URL": db.url}  # the test's own door
        stack.migrate(work, direct)
        api_key = _create_key(work, direct)
        stack.wait_until_up(box, f"{sandbox_url}/_sandbox/faults")
        api = stack.Proc(
            "api",
            ["serve", "--host", net.ip("api"), "--port", str(API_PORT), "--no-worker"],
            env,
            work,
            wrap=net.command("api", []),
        ).start()
        procs.append(api)
        worker = stack.Proc("worker", ["worker"], env, work, wrap=net.command("worker", []))
        procs.append(worker.start())
        stack.wait_until_up(api, f"{api_url}/v1/orders?limit=1")
        yield _Stack(net, work, env, sandbox_url, api_url, shop_url, db.url, api_key, procs, relay)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if relay:
            relay.stop()
        db.stop()


def _create_key(work: Path, env: dict[str, str]) -> str:
    """An API key for the shoppers and the back office (an API listening beyond loopback
    refuses to start without one)."""
    scopes = ("orders:read", "orders:write", "payments:refund")
    argv = ["keys", "create", "netchaos"] + [a for s in scopes for a in ("--scope", s)]
    printed = stack.command(work, env, *argv)
    for line in printed.splitlines():
        if line.startswith("secret:"):
            return line.split(":", 1)[1].strip()
    raise stack.StackError(f"no secret in the output of keys create:\n{printed}")


class _Conductor(threading.Thread):
    """Injects the scenario's fault at its moment and heals it when its time is up."""

    def __init__(self, net: Network, scenario: Scenario, rng: random.Random, started: Path) -> None:
        super().__init__(daemon=True)
        self.net, self.scenario = net, scenario
        #: Made by the shoppers' process when its first checkout starts: the clock of the
        #: fault's moment starts then (starting that process takes seconds on a busy machine).
        self.started = started
        low, high = scenario.start_s
        self.start_at = rng.uniform(low, high)
        self.faults: list[Fault] = []
        self.window: tuple[float, float] | None = None
        self.errors: list[str] = []
        self.tcp: dict[str, int] = {}
        self.shoppers_done = threading.Event()
        self._began = time.monotonic()

    def run(self) -> None:
        try:
            while not self.started.exists():
                if self.shoppers_done.wait(0.02):
                    return
            self._began = time.monotonic()
            if self.shoppers_done.wait(self.start_at):
                return
            injected = time.monotonic() - self._began
            before = self._tcp()
            self.faults = self.scenario.inject(self.net)
            if self.scenario.length_s is None:
                self.shoppers_done.wait()
            else:
                self.shoppers_done.wait(self.scenario.length_s)
            for fault in self.faults:
                self.net.heal(fault)
            self.window = (injected, time.monotonic() - self._began)
            after = self._tcp()
            self.tcp = {name: after[name] - before[name] for name in REORDER_COUNTERS}
        except Exception as exc:  # surfaced by the caller
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _tcp(self) -> dict[str, int]:
        """The reordering counters of every part's TCP stack, summed."""
        totals = dict.fromkeys(REORDER_COUNTERS, 0)
        for role in ROLES:
            counters = self.net.tcp_counters(role)
            for name in REORDER_COUNTERS:
                totals[name] += counters.get(name, 0)
        return totals


def run_scenario(
    scenario: Scenario, *, seed: int, checkouts: int, concurrency: int = 12, work: Path
) -> Outcome:
    """Run one scenario on a network and a stack of its own; its outcome."""
    outcome = Outcome(scenario, seed, checkouts)
    net = Network(ROLES).up()
    try:
        with _stack(net, work, seed, scenario.relay_ms) as parts:
            rng = random.Random(f"{seed}-{scenario.name}")
            conductor = _Conductor(net, scenario, rng, work / "shoppers.started")
            began = time.monotonic()
            conductor.start()
            try:
                shoppers, run_id = _shop(net, parts, seed, checkouts, concurrency)
            finally:
                conductor.shoppers_done.set()
                conductor.join(60)
                net.heal_all()
            if conductor.errors:
                raise stack.StackError(f"the conductor failed: {conductor.errors}")
            outcome.storm_s = time.monotonic() - began
            healed = time.monotonic()
            prefix = f"DEMO-{run_id}-"
            db_url = parts.db_url
            asyncio.run(settled(db_url, prefix, timeout_s=SETTLE_TIMEOUT_S))
            outcome.resolution_s = time.monotonic() - healed
            run.final_sweep(work, {**parts.env, "ORDERGUARD_DATABASE_URL": db_url})
            snapshot = asyncio.run(settled(db_url, prefix, timeout_s=SETTLE_TIMEOUT_S))
            book = stack.ledger(parts.sandbox_url)
            faults = stack.fault_counts(parts.sandbox_url)
            outcome.faults, outcome.window_s = net.faults, conductor.window
            outcome.tcp = conductor.tcp
        if parts.relay:
            outcome.relay = parts.relay.stats
    finally:
        net.down()
    outcome.report = audit.build_report(
        shoppers, snapshot, book, faults, seed=seed, database="postgresql"
    )
    return outcome


def _shop(
    net: Network, parts: _Stack, seed: int, checkouts: int, concurrency: int
) -> tuple[ShopperStats, str]:
    """The demo's shoppers, run inside the ``shopper`` namespace; what they saw."""
    work, api_url = parts.work, parts.shop_url
    out = work / "shoppers.pickle"
    run_id = f"{seed:x}"[-8:].rjust(8, "0")
    env = stack.clean_env(PYTHONPATH=_pythonpath(), NETCHAOS_API_KEY=parts.api_key)
    argv = net.command(
        "shopper",
        [
            sys.executable, "-m", "tests.e2e.netchaos", "shop", "--base", api_url,
            "--seed", str(seed), "--checkouts", str(checkouts), "--concurrency",
            str(concurrency), "--run-id", run_id, "--out", str(out),
        ],
    )  # fmt: skip
    with (work / "shoppers.log").open("ab") as log:
        done = subprocess.run(
            argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, timeout=900
        )
    if done.returncode != 0:
        tail = (work / "shoppers.log").read_text(errors="replace")[-3000:]
        raise stack.StackError(f"the shoppers failed:\n{tail}")
    with out.open("rb") as f:
        stats: ShopperStats = pickle.load(f)
    return stats, run_id


# -- the report ---------------------------------------------------------------------------


def markdown(outcomes: Sequence[Outcome], *, command: str, took_s: float) -> str:
    """``docs/chaos.md``: each scenario, what was injected, and what held."""
    lines = [
        "# Network faults: the storm across real links",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {took_s:.0f} s.",
        "This file is rewritten on every run: do not edit it by hand.",
        "",
        "Each scenario runs the demo's shoppers against `orderguard serve` (`--no-worker`) and",
        "`orderguard worker` on PostgreSQL, with the Stripe sandbox (no faults of its own):",
        "the database, the sandbox, the API, the worker and the shoppers each in their own",
        "network namespace, joined by veth pairs to a bridge that routes nowhere else. One",
        "cause of trouble is injected with nftables rules (their drop counters, read from the",
        "kernel, are the packets below); then every invariant of the demo's audit is checked",
        "against the database and the sandbox's ledger.",
        "",
        "Reading the table: about one shopper in eight closes the tab and never asks again, so",
        "fewer checkouts are acknowledged than made (the audit still holds each of them);",
        "`http_409` is the answer to a retry that arrives while the first request with its key",
        "is still being served (the shopper waits and asks again); the resolution times are",
        "per order, from its checkout to its final state.",
        "",
        "| scenario | cause | fault window (s into the storm) | packets dropped | checkouts |"
        " acknowledged | client troubles | retries with the same key | settled by the janitor"
        " | order resolution p50 / p99 / max (s) | all settled after the heal (s) |"
        " invariants |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---|",
    ]
    for o in outcomes:
        assert o.report is not None
        window = f"{o.window_s[0]:.1f} to {o.window_s[1]:.1f}" if o.window_s else "—"
        troubles = ", ".join(f"{k} {v}" for k, v in sorted(o.report.client_troubles.items()))
        held = "all held" if not o.broken else "BROKEN: " + ", ".join(o.broken)
        lines.append(
            f"| {o.scenario.name} | {o.scenario.cause} | {window} | {_injected(o)} | {o.checkouts}"
            f" | {o.report.acknowledged} | {troubles or 'none'}"
            f" | {o.report.recoveries['retry (same Idempotency-Key)']}"
            f" | {o.report.recoveries['janitor']}"
            f" | {_spread(o.report.resolution_s)} | {o.resolution_s:.1f} | {held} |"
        )
    lines += ["", "Final states and invariants, per scenario (seed, to replay with `--seed`):", ""]
    for o in outcomes:
        if o.report is not None:
            states = ", ".join(f"{k} {v}" for k, v in sorted(o.report.final_states.items()))
            count = sum(len(v) for v in o.report.invariants.values())
            lines.append(
                f"- **{o.scenario.name}** (seed {o.seed}): {states}; "
                f"{len(o.report.invariants)} invariants checked, {count} violations; "
                f"flags still open: {o.report.flags_still_open}."
            )
    return "\n".join(lines) + "\n"


def _injected(o: Outcome) -> str:
    if o.relay:
        return (
            f"none (relayed {o.relay.get('chunks', 0):.0f} chunks over "
            f"{o.relay.get('connections', 0):.0f} connections, mean delay "
            f"{o.relay.get('mean_delay_ms', 0.0):.1f} ms)"
        )
    if o.held:
        ofo = o.tcp.get("TCPOFOQueue", 0)
        detected = sum(v for k, v in o.tcp.items() if k != "TCPOFOQueue")
        return (
            f"{o.dropped} dropped; {o.held:,} packets held back and overtaken; receivers queued "
            f"{ofo:,} segments that arrived out of order, senders detected {detected:,} "
            "reorderings (kernel counters)"
        )
    return str(o.dropped)


def _spread(seconds: dict[str, float]) -> str:
    return " / ".join(f"{seconds.get(k, 0.0):.1f}" for k in ("p50", "p99", "max"))


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.netchaos")
    sub = parser.add_subparsers(dest="command")
    shop = sub.add_parser("shop", help="(internal) run the shoppers; used inside a namespace")
    shop.add_argument("--base", required=True)
    shop.add_argument("--seed", type=int, required=True)
    shop.add_argument("--checkouts", type=int, required=True)
    shop.add_argument("--concurrency", type=int, required=True)
    shop.add_argument("--run-id", required=True)
    shop.add_argument("--out", required=True)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--checkouts", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    if args.command == "shop":
        simulator = ShopperSimulator(
            args.base,
            seed=args.seed,
            client_timeout_s=run.CLIENT_TIMEOUT_S,
            concurrency=args.concurrency,
            run_id=args.run_id,
            max_tries=40,
            api_key=os.environ["NETCHAOS_API_KEY"],
        )
        Path(args.out).with_suffix(".started").touch()
        stats = asyncio.run(simulator.run(args.checkouts))
        with open(args.out, "wb") as f:
            pickle.dump(stats, f)
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"network chaos, seed {seed} (replay with --seed {seed})", flush=True)
    began = time.monotonic()
    outcomes = []
    for name in args.scenarios.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"og-netchaos-{name}-"))
        try:
            outcome = run_scenario(
                SCENARIOS[name], seed=seed, checkouts=args.checkouts,
                concurrency=args.concurrency, work=work,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        outcomes.append(outcome)
        state = "held" if not outcome.broken else "BROKEN"
        print(f"  {name}: {state}; dropped {outcome.dropped} packets; held {outcome.held}; "
              f"tcp {outcome.tcp}; "
              f"resolved in {outcome.resolution_s:.1f} s", flush=True)  # fmt: skip
    command = "make chaos" if args.report else "python -m tests.e2e.netchaos"
    text = markdown(outcomes, command=command, took_s=time.monotonic() - began)
    if args.report:
        Path(args.report).write_text(text)
    else:
        print(text)
    return 1 if any(o.broken for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(_main())
