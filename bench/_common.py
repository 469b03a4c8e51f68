"""Shared helpers for the benchmarks: machine facts, /proc CPU accounting, servers, the DB.

Nothing here imports the application: the load generator and the baseline apps import this
module too, and must stay as light as possible.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable

#: The PostgreSQL server the benchmarks run against (trust auth, see docs/benchmarks.md).
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = os.environ.get("BENCH_PG_DB", "og_bench")

#: The order every benchmark places; the same body as ``tests/factories.py`` ``BODY``.
#: ``merchant_reference`` is made unique per request by the load generator.
BODY: dict[str, Any] = {
    "merchant_reference": None,
    "currency": "EUR",
    "items": [{"sku": "TEE-M", "name": "T-shirt", "quantity": 2, "unit_amount": 1999}],
    "customer": {
        "email": "Ana@Example.com",
        "name": "Ana Silva",
        "phone": "912 345 678",
        "shipping_address": {
            "line1": "Rua Augusta 1",
            "city": "Lisboa",
            "postal_code": "1100-048",
            "country": "PT",
        },
    },
}


def order_body(reference: str) -> dict[str, Any]:
    """``BODY`` with ``reference`` as its merchant reference."""
    body = copy.deepcopy(BODY)
    body["merchant_reference"] = reference
    return body


def bench_db_url(db: str = PG_BENCH_DB) -> str:
    """The URL of database ``db`` on the admin server."""
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{db}"


# --------------------------------------------------------------------------- machine


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "unknown"
    hypervisor = "KVM guest" if "hypervisor" in _first("/proc/cpuinfo", "flags") else "bare metal?"
    info = {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": f"{_first('/proc/cpuinfo', 'model name')} ({hypervisor})",
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_scalar("SELECT version()").split(" on ")[0],
    }
    settings = pg_scalar(
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) "
        "FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', "
        "'max_connections', 'wal_level')"
    )
    info["postgresql settings"] = settings
    for pkg in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "psycopg",
                "psycopg-binary", "psycopg-pool", "pydantic", "orjson"):  # fmt: skip
        info[pkg] = _package_version(pkg)
    return info


# --------------------------------------------------------------------------- /proc CPU

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far, or ``None`` when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_ids(pid: int) -> list[int]:
    """The thread ids of ``pid`` (the main thread's is ``pid`` itself)."""
    try:
        return sorted(int(entry.name) for entry in os.scandir(f"/proc/{pid}/task"))
    except OSError:
        return []


def thread_cpu_seconds(pid: int, tid: int) -> float | None:
    """User + system CPU seconds of thread ``tid`` of ``pid``, or ``None`` when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_schedstat(pid: int, tid: int) -> tuple[int, int] | None:
    """Nanoseconds thread ``tid`` of ``pid`` ran, and was ready to run but waited for a CPU
    (its ``schedstat``); ``None`` when it is gone or the kernel does not say."""
    try:
        ran, waited = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2]
        return int(ran), int(waited)
    except (OSError, ValueError):
        return None


def thread_wait_seconds(pid: int, tid: int) -> float | None:
    """Seconds thread ``tid`` of ``pid`` waited for a CPU (:func:`thread_schedstat`)."""
    stat = thread_schedstat(pid, tid)
    return None if stat is None else stat[1] / 1e9


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process descended from it (its children, theirs, ...), from
    the parent pids in ``/proc/*/stat``; ``pid`` first, ``[]`` when it is gone."""
    if not Path(f"/proc/{pid}").exists():
        return []
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, at = [pid], 0
    while at < len(tree):
        tree += sorted(children.get(tree[at], []))
        at += 1
    return tree


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of every live process descended from it (see
    :func:`process_tree`), each with the CPU of the children it has reaped (``cutime`` and
    ``cstime``): summed over the tree, a process that exits and is reaped between two
    snapshots is still counted once. ``{}`` when ``pid`` is gone."""
    seconds: dict[int, float] = {}
    for member in process_tree(pid):
        try:
            raw = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        seconds[member] = sum(int(value) for value in fields[11:15]) / CLK_TCK
    return seconds


def connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections (IPv4) on local ``port`` each of ``pids`` holds:
    which of a server's processes accepted the clients' connections."""
    established: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
            established.add(cols[9])
    counts: dict[int, int] = {}
    for pid in pids:
        inodes = socket_inodes(pid)
        if inodes is not None:
            counts[pid] = len(inodes & established)
    return counts


def socket_inodes(pid: int) -> set[str] | None:
    """The inodes of the sockets ``pid`` holds open (``None``: it is gone, or not ours to
    read)."""
    inodes = set()
    try:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    return inodes


def write_result(result: object) -> None:
    """Print ``result`` as one JSON line, all of it, however large. An event loop may have
    left stdout non-blocking, and a reader that is slow to drain the pipe would then cut
    the line at the pipe's 64 KiB: so stdout is made blocking again and the bytes go
    straight to its descriptor, and should anything turn it non-blocking meanwhile, a full
    pipe is waited for until it takes the rest."""
    fd = sys.stdout.fileno()
    os.set_blocking(fd, True)
    sys.stdout.flush()
    rest = memoryview(orjson.dumps(result) + b"\n")
    while rest:
        try:
            rest = rest[os.write(fd, rest) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def proc_counters(pid: int) -> dict[str, int]:
    """Context switches (``/proc/PID/status``) and I/O counters (``/proc/PID/io``) of ``pid``.

    ``voluntary_ctxt_switches`` counts the times it blocked (waiting for I/O, a lock, the
    network), ``nonvoluntary_ctxt_switches`` the times the scheduler took the CPU away;
    ``syscw``/``write_bytes`` are write system calls and bytes that reached storage.
    From each thread's ``schedstat``: ``run_ns``, the time it ran, and ``runqueue_wait_ns``,
    the time it was ready to run but waited for a CPU (other threads or processes had them);
    the ``main_`` ones are the main thread's alone (an event loop's). The totals over threads
    count the threads alive at the read (like ``blkio_delay_ticks``): a delta across a
    thread's end may be negative, so compare the ``main_`` ones between two reads.
    """
    counters: dict[str, int] = {}
    for path in (f"/proc/{pid}/status", f"/proc/{pid}/io"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            value = value.strip()
            if value.isdigit() and (key.endswith("ctxt_switches") or path.endswith("/io")):
                counters[key] = int(value)
    for tid in thread_ids(pid):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        counters["blkio_delay_ticks"] = counters.get("blkio_delay_ticks", 0) + int(fields[39])
        schedstat = thread_schedstat(pid, tid)
        if schedstat is None:
            continue
        for prefix in ("", "main_") if tid == pid else ("",):
            for key, ns in zip(("run_ns", "runqueue_wait_ns"), schedstat, strict=True):
                counters[prefix + key] = counters.get(prefix + key, 0) + ns
    return counters


def listening_ports(pid: int) -> list[int]:
    """TCP ports ``pid`` listens on (IPv4), from its socket fds and ``/proc/net/tcp``."""
    inodes = socket_inodes(pid)
    if inodes is None:
        return []
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
            ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def postgres_pids() -> list[int]:
    """Every process called ``postgres`` (the server, its backends and helpers)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(entry.path, "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine since boot, all cores.

    ``busy`` excludes idle, iowait and steal (time the hypervisor gave to someone else).
    """
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts[:8]]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7]
    total = sum(values)
    return (total - idle - steal) / CLK_TCK, steal / CLK_TCK, total / CLK_TCK


@dataclass
class CpuSnapshot:
    """CPU counters at one instant: named processes, named process trees, all postgres
    processes, the machine."""

    at: float
    named: dict[str, float | None]
    postgres: dict[int, float | None]
    machine: tuple[float, float, float]
    #: name → {pid: CPU seconds} of a process and its descendants (:func:`tree_cpu_seconds`).
    trees: dict[str, dict[int, float]] = field(default_factory=dict)

    @classmethod
    def take(
        cls,
        pids: dict[str, int],
        threads: dict[str, tuple[int, int]] | None = None,
        trees: dict[str, int] | None = None,
    ) -> CpuSnapshot:
        """``pids``: name → process; ``threads``: name → (process, thread) to account too;
        ``trees``: name → process to account with every process descended from it (a
        server that forks, such as ``serve --processes N``: its supervisor and children)."""
        named = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        for name, (pid, tid) in (threads or {}).items():
            named[name] = thread_cpu_seconds(pid, tid)
            # as cores (see cpu_usage): the share of the window it waited for a CPU
            named[f"waiting.{name}"] = thread_wait_seconds(pid, tid)
        return cls(
            at=time.monotonic(),
            named=named,
            postgres={pid: proc_cpu_seconds(pid) for pid in postgres_pids()},
            machine=machine_cpu(),
            trees={name: tree_cpu_seconds(pid) for name, pid in (trees or {}).items()},
        )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Cores used (1.0 = one core busy) by each named process, postgres and the machine;
    ``waiting.NAME``, for a watched thread, the share of the time it waited for a CPU."""
    wall = after.at - before.at
    usage: dict[str, float] = {}
    for name, end in after.named.items():
        start = before.named.get(name)
        usage[name] = (end - start) / wall if end is not None and start is not None else 0.0
    for name, end_tree in after.trees.items():
        start_tree = before.trees.get(name, {})
        # Totals, not per process: a process reaped in between moved into its parent's
        # cutime/cstime; one born in between counts fully. Gone at either end: 0, as above.
        usage[name] = (
            (sum(end_tree.values()) - sum(start_tree.values())) / wall
            if end_tree and start_tree
            else 0.0
        )
    pg = 0.0
    for pid, end in after.postgres.items():
        if end is not None:
            pg += end - (before.postgres.get(pid) or 0.0)  # backends born mid-window count fully
    usage["postgres"] = pg / wall
    usage["machine"] = (after.machine[0] - before.machine[0]) / wall
    usage["steal"] = (after.machine[1] - before.machine[1]) / wall
    return usage


def tree_split(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, dict[str, float]]:
    """Cores used by each process of each tree (name → {pid: cores}), the root first: how a
    tree's total (:func:`cpu_usage`) divides among its processes."""
    wall = after.at - before.at
    return {
        name: {
            str(pid): (seconds - before.trees.get(name, {}).get(pid, 0.0)) / wall
            for pid, seconds in end_tree.items()
        }
        for name, end_tree in after.trees.items()
    }


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody holds right now, for a server process to bind: chosen
    where the kernel gives no other process a port meanwhile (``orderguard.api.server``)."""
    from orderguard.api.server import free_port as chosen

    return chosen()


def wait_healthy(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, path: str = "/healthz"
) -> None:
    """Block until ``GET path`` answers 200, or raise if the server dies or is slow."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    request_bytes = request.encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(request_bytes)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not healthy after {timeout:.0f}s")


@dataclass
class Server:
    """A server subprocess (its stderr goes to ``log``)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    name: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    port: int,
    health_path: str = "/healthz",
    timeout: float = 30.0,
) -> Server:
    """Start ``argv`` in ``workdir``, wait (up to ``timeout`` seconds) until ``GET
    health_path`` answers 200 on ``port``."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, port, proc, log)
    try:
        wait_healthy(port, proc, timeout=timeout, path=health_path)
    except BaseException as stopped:
        server.stop()
        if not isinstance(stopped, Exception):
            raise  # stopped from outside, not a failed start
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start:\n{tail}") from None
    return server


def run_child(
    ctx: Context, script: Path, mode: str, url: str, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python script mode url *args`` (a benchmark's measured part, in a process of its
    own) against database ``url``, with ``env`` added to its environment; the JSON object its
    last line of output holds."""
    import json

    done = subprocess.run(
        [PYTHON, str(script), mode, url, *args],
        env={**ctx.env(url), **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr[-4000:]
        raise RuntimeError(f"{script.stem} bench {mode} failed:\n{done.stdout}\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_sandbox(
    ctx: Context,
    name: str,
    ledger: Path,
    *,
    webhooks: tuple[str, str] | None = None,
    timeout: float = 30.0,
) -> Server:
    """An ``orderguard sandbox-provider`` process (``none`` profile) with its ledger file;
    ``webhooks`` (URL, signing secret): where it sends its events, else nowhere;
    ``timeout``: seconds it is given to answer."""
    port = free_port()
    argv = [
        str(VENV_BIN / "orderguard"), "sandbox-provider", "--host=127.0.0.1",
        f"--port={port}", "--faults=none", f"--db={ledger}",
    ]  # fmt: skip
    if webhooks is not None:
        argv += [f"--webhook-url={webhooks[0]}", f"--webhook-secret={webhooks[1]}"]
    url = bench_db_url()
    return start_server(
        name, argv, ctx.env(url), ctx.workdir, port, health_path="/ledger", timeout=timeout
    )


# --------------------------------------------------------------------------- PostgreSQL


def pg_scalar(sql: str, url: str = PG_ADMIN_URL) -> str:
    """The first column of the first row of ``sql``, as text."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql.encode()).fetchone()
    return "" if row is None else str(row[0])


def pg_execute(sql: str, url: str = PG_ADMIN_URL) -> None:
    """Run ``sql`` outside a transaction (CREATE/DROP DATABASE, CHECKPOINT)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def recreate_database(db: str = PG_BENCH_DB) -> None:
    """Drop (disconnecting everyone) and create ``db``."""
    pg_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    pg_execute(f'CREATE DATABASE "{db}"')


def migrated_database(ctx: Context) -> str:
    """The bench database, recreated and migrated by ``orderguard migrate``; its URL."""
    url = bench_db_url()
    recreate_database()
    subprocess.run(
        [str(VENV_BIN / "orderguard"), "migrate"], env=ctx.env(url), check=True, capture_output=True
    )
    return url


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def median(values: list[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --------------------------------------------------------------------------- sections


@dataclass
class Context:
    """What ``bench/run.py`` hands every section: the knobs and a scratch directory."""

    rounds: int
    warmup: float
    duration: float
    connections: int
    pool_size: int | None
    workdir: Path
    log: Any  # Callable[[str], None]
    #: The command line that runs this benchmark, and when it started (for the sections
    #: that say so themselves).
    command: str = ".venv/bin/python bench/run.py"
    started: str = ""

    def env(self, database_url: str) -> dict[str, str]:
        """A clean environment for orderguard processes: only the settings we choose."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")}
        env["ORDERGUARD_DATABASE_URL"] = database_url
        if self.pool_size is not None:
            env["ORDERGUARD_DB_POOL_SIZE"] = str(self.pool_size)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env
