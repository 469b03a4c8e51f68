"""The intake benchmark's own logic, without running it: a server's CPU counts every process
descended from it (``serve --processes 2`` is a supervisor and its children), the
connections each process holds are found, and the section reports the 2-process over
1-process ratio against its target."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import intake  # noqa: E402

#: A parent that starts a child burning CPU and, with ``reap``, waits for it; then sleeps.
PARENT = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + {burn}\\nwhile time.process_time() < end: pass"
child = subprocess.Popen([sys.executable, "-c", burn + "\\ntime.sleep({linger})"])
print(child.pid, flush=True)
if {reap}:
    child.wait()
time.sleep(30)
"""


def _parent(burn: float, linger: float, reap: bool) -> tuple[subprocess.Popen[str], int]:
    code = PARENT.format(burn=burn, linger=linger, reap=reap)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _stop(proc: subprocess.Popen[str], child: int) -> None:
    """Kill the parent and its child (while still its child: a reaped one's pid may be
    someone else's by now), close the pipe."""
    if child in _common.process_tree(proc.pid):
        os.kill(child, 9)
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.slow
def test_a_tree_counts_the_cpu_of_the_children_the_process_alone_does_not() -> None:
    parent, child = _parent(burn=0.6, linger=30, reap=False)
    try:
        assert _common.process_tree(parent.pid) == [parent.pid, child]
        before = _common.CpuSnapshot.take({"alone": parent.pid}, trees={"tree": parent.pid})
        time.sleep(1.0)
        after = _common.CpuSnapshot.take({"alone": parent.pid}, trees={"tree": parent.pid})
    finally:
        _stop(parent, child)
    usage = _common.cpu_usage(before, after)
    # The child burns its 0.6 s within the second (it may have started before the first
    # snapshot); the parent only sleeps.
    assert usage["alone"] < 0.05
    assert usage["tree"] > 0.15
    split = _common.tree_split(before, after)["tree"]
    assert list(split) == [str(parent.pid), str(child)]
    assert split[str(child)] == pytest.approx(usage["tree"] - split[str(parent.pid)])


@pytest.mark.slow
def test_a_child_that_exits_and_is_reaped_in_the_window_still_counts() -> None:
    parent, child = _parent(burn=0.6, linger=0, reap=True)
    try:
        deadline = time.monotonic() + 10
        while _common.tree_cpu_seconds(parent.pid).get(child, 0) < 0.3:  # half-way through
            assert time.monotonic() < deadline
            time.sleep(0.01)
        before = _common.CpuSnapshot.take({}, trees={"tree": parent.pid})
        deadline = time.monotonic() + 10
        while child in _common.process_tree(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _common.CpuSnapshot.take({}, trees={"tree": parent.pid})
    finally:
        _stop(parent, child)
    assert child in before.trees["tree"] and child not in after.trees["tree"]
    cores = _common.cpu_usage(before, after)["tree"]
    seconds = cores * (after.at - before.at)
    # What it burnt after the first snapshot (0.6 s and its start and exit, less what it had
    # burnt by then, at least 0.3 s), through the parent's cutime: none of it lost (about 0),
    # what it had burnt before not counted again (about 0.6 s).
    burnt = before.trees["tree"][child]
    assert 0.6 - burnt - 0.02 <= seconds <= 0.6 + 0.15 - burnt


def test_a_tree_that_is_gone_counts_nothing() -> None:
    gone = 2**22 + 12345  # above the default pid_max: no such process
    assert _common.process_tree(gone) == [] and _common.tree_cpu_seconds(gone) == {}
    before = _common.CpuSnapshot.take({}, trees={"tree": gone})
    after = _common.CpuSnapshot.take({}, trees={"tree": gone})
    assert _common.cpu_usage(before, after)["tree"] == 0.0


def test_connections_are_told_apart_by_the_process_that_holds_them() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            # Only the accepted ends have the server's port as their local port.
            assert _common.connections_by_process([os.getpid()], port) == {os.getpid(): 3}
            accepted[0].close()
            assert _common.connections_by_process([os.getpid()], port) == {os.getpid(): 2}
        finally:
            for sock in clients + accepted:
                sock.close()


# --------------------------------------------------------------------------- rendering


def _run(rps: float, server: float = 0.9, processes: int = 1) -> dict[str, Any]:
    pids = [str(100 + i) for i in range(processes)]
    cores = [0.02, *(server / (processes - 1) for _ in pids[1:])] if processes > 1 else [server]
    return {
        "rps": rps,
        "p50": 80.0,
        "p95": 120.0,
        "p99": 140.0,
        "max": 160.0,
        "errors": 0,
        "statuses": {"201": int(rps * 12)},
        "conn_errors": 0,
        "cpu": {
            "server": sum(cores),
            "postgres": 0.3,
            "loadgen": 0.05,
            "machine": 1.5,
            "steal": 0.0,
            "other": 1.5 - sum(cores) - 0.35,
        },
        "processes": {"server": dict(zip(pids, cores, strict=True))},
        "accepted": {"server": {pid: 0 if i == 0 else 32 for i, pid in enumerate(pids)}},
        "activity": intake.Activity(
            samples=10, active=20.0, idle_in_tx=10.0, connections=100.0, waits={"CPU": 20}
        ),
    }


def _results(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Rounds with intake at the first and intake through 2 processes at the second req/s."""
    rounds = [
        {
            "parse": _run(6000.0),
            "cte": _run(1500.0),
            "cte_settled": _run(1600.0),
            "intake": _run(one),
            "intake2": _run(two, server=1.2, processes=3),
        }
        for one, two in pairs
    ]
    probe = {"rows": {"orders": 1}, "requests": 20, "round_trips": 2, "statements": 7, "sql": []}
    return {"probe": probe, "rounds": rounds, "single": dict(rounds[0])}


def _render(results: dict[str, Any], tmp_path: Path) -> str:
    ctx = _common.Context(
        rounds=len(results["rounds"]),
        warmup=3.0,
        duration=12.0,
        connections=64,
        pool_size=None,
        workdir=tmp_path,
        log=print,
    )
    return intake.render(ctx, results, pool_size=10)


def test_the_section_reports_the_two_process_ratio_per_round_and_its_median(
    tmp_path: Path,
) -> None:
    text = _render(_results([(700, 980), (700, 840), (800, 1200)]), tmp_path)
    assert "- **intake 2 processes / intake** = 1.40, the median of the per-round ratios " in text
    assert "(per round: 1.40, 1.20, 1.50; ratio of the median req/s: 1.40)" in text
    assert "≥ 1.3 x `--processes 1`" in text and "1.40 x → **MET**" in text
    assert "| orderguard intake, 2 processes | 980 |" in text
    assert "counts 3 processes (the supervisor and its children): 1.22 cores" in text
    assert "the supervisor 0.02, the API processes 0.60 and 0.60 cores" in text
    assert "per round: 32/32, 32/32, 32/32." in text


def test_the_two_process_target_is_not_met_below_its_ratio(tmp_path: Path) -> None:
    text = _render(_results([(700, 840), (700, 900)]), tmp_path)
    # Median of 1.20 and 1.29 (two rounds: their mean).
    assert "= 1.24, the median of the per-round ratios" in text
    assert "1.24 x → **NOT MET**" in text


#: A process that says it is up, then spins until killed.
SPIN = "print('ready', flush=True)\nwhile True: pass"


@pytest.mark.slow
def test_a_thread_kept_from_a_cpu_counts_its_wait_for_one() -> None:
    """Two spinning processes on one CPU: each runs about half the time and waits for the
    CPU the other half, which the scheduler's counters (``runqueue_wait_ns``) show and its
    CPU time alone does not."""
    cpu = min(os.sched_getaffinity(0))
    spinners = []
    try:
        for _ in range(2):
            spinner = subprocess.Popen(
                [sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True
            )
            spinners.append(spinner)
            assert spinner.stdout is not None and spinner.stdout.readline().strip() == "ready"
            os.sched_setaffinity(spinner.pid, {cpu})
        pid = spinners[0].pid
        watched = {"spinner": (pid, pid)}
        before, started = _common.proc_counters(pid), time.monotonic()
        first = _common.CpuSnapshot.take({}, threads=watched)
        time.sleep(1.0)
        after, elapsed = _common.proc_counters(pid), time.monotonic() - started
        usage = _common.cpu_usage(first, _common.CpuSnapshot.take({}, threads=watched))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
            assert spinner.stdout is not None
            spinner.stdout.close()
    if not after.get("main_run_ns"):
        pytest.skip("this kernel gives no /proc/PID/task/TID/schedstat")
    ran = (after["main_run_ns"] - before["main_run_ns"]) / 1e9
    waited = (after["main_runqueue_wait_ns"] - before["main_runqueue_wait_ns"]) / 1e9
    # a share of the time waiting, which CPU time alone would not show; never more in all
    # than the time that passed (the machine's other load, or a hypervisor's steal, may
    # take some from both)
    assert waited >= 0.25 * elapsed, (ran, waited, elapsed)
    assert ran + waited <= 1.15 * elapsed, (ran, waited, elapsed)
    # one thread: the process's counters are its main thread's
    assert after["run_ns"] == after["main_run_ns"]
    # the load generator's window says the same, as shares of the time
    assert usage["waiting.spinner"] >= 0.25, usage
    assert usage["spinner"] + usage["waiting.spinner"] <= 1.15, usage
