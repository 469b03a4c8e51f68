"""``orderguard serve --processes N`` on PostgreSQL: a supervisor, N API processes sharing the
port and one worker, all real processes.

What each test trusts is not what the server says of itself: child processes are read from
``/proc``, acknowledged orders are looked up in the database, request counts are the
test's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import Server, clean_env, run_cli
from tests.factories import key, order_body

pytestmark = pytest.mark.slow

#: The API processes of these tests.
PROCESSES = 2


def children(server: Server) -> dict[str, set[int]]:
    """The supervisor's live child processes by role (``api``, ``worker``), from ``/proc``."""
    assert server.process is not None
    pid = server.process.pid
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found: dict[str, set[int]] = {"api": set(), "worker": set()}
    for child in map(int, listed):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{child}/stat").read_text().split()[2]
        except OSError:  # it ended between listing and reading (ENOENT or ESRCH)
            continue
        if status != "Z" and b"orderguard.cli.child" in argv:
            found[argv[argv.index(b"orderguard.cli.child") + 1].decode()].add(child)
    return found


def wait_for(
    what: str,
    condition: Callable[[], bool],
    server: Server,
    timeout: float = 90,
    detail: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = [line for line in server.log().splitlines() if "uvicorn.access" not in line]
            raise AssertionError(f"{what} never happened ({detail()}):\n" + "\n".join(log[-40:]))
        time.sleep(0.1)


@contextmanager
def supervised(pg_url: str, tmp_path: Path, **extra: str) -> Iterator[Server]:
    """``serve --processes 2`` on ``pg_url``, started and always stopped."""
    env = clean_env(pg_url, ORDERGUARD_METRICS_CACHE_S="0", **extra)
    env["ORDERGUARD_SANDBOX_DB"] = str(tmp_path / "sandbox.db")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Server(env=env, cwd=tmp_path, options=("--processes", str(PROCESSES)))
    server.env = {**server.env, "ORDERGUARD_PUBLIC_URL": server.url}
    server.start()
    try:
        wait_for("every API process serving", lambda: "serving with 2 API" in server.log(), server)
        yield server
    finally:
        server.stop()


def place(url: str) -> httpx.Response:
    """One paid order, on a connection of its own."""
    with httpx.Client(timeout=30) as client:
        return client.post(
            f"{url}/v1/orders", json=order_body(payment={"method": "pm_card_visa"}), headers=key()
        )


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Stream:
    """Requests sent without pause by a few threads, each on a fresh connection, until
    stopped: what came back (status codes) and what failed on the way (exceptions)."""

    def __init__(self, send: Callable[[], httpx.Response], threads: int = 3) -> None:
        self.send = send
        self.answers: list[httpx.Response] = []
        self.failures: list[BaseException] = []
        self.stopped = threading.Event()
        self.pool = ThreadPoolExecutor(threads)
        self.threads = threads

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.answers.append(self.send())
            except httpx.HTTPError as exc:
                self.failures.append(exc)

    def __enter__(self) -> Stream:
        for _ in range(self.threads):
            self.pool.submit(self._loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.pool.shutdown(wait=True)


def orders_in_db(pg_url: str, ids: list[str]) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id, count(*) FROM orders WHERE id = ANY(%s) GROUP BY id", (ids,)
        ).fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


@pytest.mark.postgres
def test_an_api_process_killed_loses_no_acknowledged_order_and_comes_back(
    pg_url: str, tmp_path: Path
) -> None:
    with supervised(pg_url, tmp_path) as server:
        before = children(server)["api"]
        victim = min(before)
        with Stream(lambda: place(server.url)) as stream:
            time.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            so_far = lambda: (len(stream.answers), stream.failures[-3:], children(server))  # noqa: E731
            wait_for(
                "a new API process in place of the killed one",
                lambda: len(children(server)["api"] - {victim}) == PROCESSES,
                server,
                detail=so_far,
            )
            replaced = len(stream.answers)
            # the new process serves: requests keep being acknowledged after it started
            wait_for("requests after the restart", lambda: len(stream.answers) > replaced + 6,
                     server, detail=so_far)  # fmt: skip
        after = children(server)["api"]
    acknowledged = [a.json()["id"] for a in stream.answers if a.status_code == 201]
    assert acknowledged and len(set(acknowledged)) == len(acknowledged)
    assert orders_in_db(pg_url, acknowledged) == dict.fromkeys(acknowledged, 1)
    assert [a.status_code for a in stream.answers] == [201] * len(stream.answers)
    assert victim not in after and len(after) == PROCESSES
    assert f"process {victim} exited with status -9" in server.log()


def both_answer(server: Server, api: set[int]) -> int:
    """Orders placed 8 at a time until each API process of ``api`` answered some (the
    kernel chooses who accepts); how many were placed."""
    made = 0
    with ThreadPoolExecutor(4) as pool:
        while made < 80:
            answers = list(pool.map(lambda _: place(server.url), range(8)))
            made += len(answers)
            assert [a.status_code for a in answers] == [201] * len(answers)
            seen = samples(server.url)
            answered_by = {
                pid: seen.get(("orderguard_api_process_requests", (("pid", str(pid)),)), 0)
                for pid in api
            }
            if all(count > 0 for count in answered_by.values()):
                return made
    raise AssertionError(f"an API process answered nothing: {answered_by}")


@pytest.mark.postgres
def test_two_processes_answer_metrics_add_up_and_sighup_refuses_no_request(
    pg_url: str, tmp_path: Path
) -> None:
    with supervised(pg_url, tmp_path) as server:
        assert server.process is not None
        old = children(server)
        assert len(old["api"]) == PROCESSES and len(old["worker"]) == 1
        made = both_answer(server, old["api"])
        # one process's counter files and the other's, added up by the one that answered
        seen = samples(server.url)
        assert seen[("orderguard_intake_requests_total", (("outcome", "created"),))] == made
        assert seen[("orderguard_orders", (("state", "paid"),))] == made  # once, not per process

        def one() -> httpx.Response:
            if threading.get_ident() % 2:
                return place(server.url)
            with httpx.Client(timeout=30) as client:
                return client.get(f"{server.url}/healthz")

        with Stream(one, threads=4) as stream:
            time.sleep(0.5)
            server.process.send_signal(signal.SIGHUP)
            wait_for(
                "every process replaced",
                lambda: (
                    (now := children(server))["api"].isdisjoint(old["api"])
                    and len(now["api"]) == PROCESSES
                    and len(now["worker"]) == 1
                    and now["worker"] != old["worker"]
                ),
                server,
            )
            time.sleep(0.5)
        assert "reload done" in server.log()
        placed = [a.json()["id"] for a in stream.answers if a.status_code == 201]
        # the replaced processes' counts stay in the sum
        after = samples(server.url)
        created = after[("orderguard_intake_requests_total", (("outcome", "created"),))]
        assert created == made + len(placed)
    assert stream.failures == [], stream.failures[:3]
    assert len(stream.answers) > 20
    assert [a.status_code for a in stream.answers if a.status_code >= 300] == []
    assert orders_in_db(pg_url, placed) == dict.fromkeys(placed, 1)


@pytest.mark.postgres
def test_sigterm_lets_a_slow_request_finish_then_exits_0(pg_url: str, tmp_path: Path) -> None:
    slow = tmp_path / "slow.toml"
    slow.write_text("latency = 1.0\nlatency_ms = [3000, 3000]\n")  # every provider call 3 s
    with supervised(pg_url, tmp_path, ORDERGUARD_SANDBOX_FAULTS=str(slow)) as server:
        assert server.process is not None
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            answer = pool.submit(place, server.url)
            time.sleep(1.0)  # the request waits on the provider
            server.process.send_signal(signal.SIGTERM)
            status = server.wait_exit(timeout=40)
            response = answer.result(timeout=30)
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 3.0  # it did wait on the slow provider
    assert status == 0, server.log()
    assert orders_in_db(pg_url, [response.json()["id"]]) == {response.json()["id"]: 1}
    assert "stopping: requests in flight" in server.log()
    with pytest.raises(httpx.ConnectError):  # the port is closed once it stopped
        httpx.get(f"{server.url}/healthz", timeout=2)


def test_sqlite_refuses_more_than_one_process_and_bad_counts_are_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(sqlite_url)
    refused = run_cli("serve", "--processes", "2", env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "SQLite has one writer" in refused.stderr
    wrong = run_cli("serve", "--processes", "65", env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and "--processes" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "orderguard.db").exists()  # refused before opening the database


def test_sighup_to_a_single_process_serve_reloads_nothing_and_ends_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SIGHUP is how ``--processes N`` reloads; sent to a serve of one process (by a
    habit, or a unit file's ExecReload) it must not end the only process serving."""
    server = Server(env=clean_env(sqlite_url), cwd=tmp_path).start()
    try:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for("the warning", lambda: "SIGHUP ignored" in server.log(), server, timeout=20)
        assert server.process.poll() is None, "SIGHUP ended the only serve process"
        with httpx.Client(timeout=10) as client:
            created = client.post(f"{server.url}/v1/orders", json=order_body(), headers=key())
        assert created.status_code == 201, created.text
    finally:
        server.stop()


def held_by(pids: set[int], port: int) -> dict[int, int]:
    """The established connections each of ``pids`` holds on ``port``, read from ``/proc``
    (the kernel's table of TCP sockets, and each process's descriptors)."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED, on the server's side
                established.add(fields[9])
    held = dict.fromkeys(pids, 0)
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in established:
                    held[pid] += 1
    return held


def burst(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections opened at once, each answered once (so accepted)."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for conn in conns:
        conn.sendall(request)
    for conn in conns:
        assert conn.recv(4096).startswith(b"HTTP/1.1 200"), "a connection got no answer"
    return conns


@pytest.mark.postgres
def test_a_burst_of_keep_alive_connections_is_shared_evenly_by_the_processes(
    pg_url: str, tmp_path: Path
) -> None:
    """Each process accepts one connection at a time and leaves the next to a process
    holding fewer (``api/accepting.py``); before, the first process to wake took a burst
    whole (splits of 64 : 0, 61 : 3 and 43 : 21 measured)."""
    with supervised(pg_url, tmp_path) as server:
        api = children(server)["api"]
        for _ in range(2):
            conns = burst(server.port, 64)
            try:
                held = held_by(api, server.port)
            finally:
                for conn in conns:
                    conn.close()
            assert sum(held.values()) == 64, held
            assert min(held.values()) >= 24, held  # even would be 32 : 32
            wait_for(
                "the connections closed",
                lambda: sum(held_by(api, server.port).values()) == 0,
                server,
            )
