"""The supervisor of ``serve --processes`` on processes that do nothing but exit (or sleep):
how long it waits before starting a dying process again, that a process stopped on purpose
is not started again; how many processes ``serve`` runs; and that a process that gets no
call still shows its circuit turning half-open."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pytest

from orderguard.cli import supervisor as sv
from orderguard.cli.serve import METRICS_PREFIX, _remove_abandoned_folders, process_count
from orderguard.cli.supervisor import Supervisor
from orderguard.observability.instrumented import ObservedBreaker, publish_breakers
from orderguard.observability.metrics import REGISTRY


def _exiting(code: int) -> sv.Command:
    def command(
        role: str, ready: int | None, slot: int | None
    ) -> tuple[list[str], tuple[int, ...]]:
        return [sys.executable, "-c", f"raise SystemExit({code})"], ()

    return command


def _sleeping(role: str, ready: int | None, slot: int | None) -> tuple[list[str], tuple[int, ...]]:
    return [sys.executable, "-c", "import time; time.sleep(60)"], ()


def test_a_process_that_keeps_dying_waits_longer_each_time_and_the_exits_are_told() -> None:
    exited: list[int] = []
    supervisor = Supervisor(1, True, _exiting(3), {}, 1.0, exited=exited.append)
    first = supervisor._spawn("worker")
    pauses: list[float] = []
    started = [first.pid]
    deadline = time.monotonic() + 20
    while len(pauses) < 3 and time.monotonic() < deadline:
        before = len(supervisor.children)
        supervisor._tick()
        if supervisor.due and (not pauses or supervisor.pauses["worker"] != pauses[-1]):
            pauses.append(supervisor.pauses["worker"])
        if len(supervisor.children) > before:
            started.append(supervisor.children[-1].pid)
        time.sleep(0.01)
    supervisor._stop(list(supervisor.children))
    assert pauses == [sv.FIRST_PAUSE_S, 2 * sv.FIRST_PAUSE_S, 4 * sv.FIRST_PAUSE_S]
    assert exited[:3] == started[:3]  # each exit reported (its live metrics dropped)
    assert len(set(started)) == len(started) >= 3


def test_a_process_stopped_on_purpose_is_not_started_again() -> None:
    supervisor = Supervisor(1, True, _sleeping, {}, 1.0)
    child = supervisor._spawn("worker")
    supervisor._stop([child])
    for _ in range(20):
        supervisor._tick()
        time.sleep(0.01)
    assert child.process.returncode is not None
    assert supervisor.children == [] and supervisor.due == []


def test_one_process_per_core_on_postgresql_one_on_sqlite_which_refuses_more() -> None:
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert process_count(None, sqlite=False) == min(len(allowed or ()) or os.cpu_count() or 1, 64)
    assert process_count(None, sqlite=True) == 1
    assert process_count(3, sqlite=False) == 3
    assert process_count(1, sqlite=True) == 1
    with pytest.raises(click.UsageError, match="SQLite has one writer"):
        process_count(2, sqlite=True)


def _circuit() -> float | None:
    return REGISTRY.get_sample_value(
        "orderguard_provider_circuit_state", {"provider": "stripe-idle"}
    )


async def test_an_open_circuit_is_published_half_open_once_cooled_down_without_a_call() -> None:
    now = [0.0]
    breaker = ObservedBreaker(
        "stripe-idle", failure_threshold=1, cool_down_s=5, clock=lambda: now[0]
    )
    breaker.record_failure()
    assert _circuit() == 2  # open
    now[0] = 6.0  # cooled down; no call comes
    stop = asyncio.Event()
    publishing = asyncio.create_task(publish_breakers([breaker], stop, every_s=0.01))
    await asyncio.sleep(0.05)
    stop.set()
    await publishing
    assert _circuit() == 1  # half-open: a call may probe


def test_a_reload_whose_new_process_fails_keeps_the_running_one() -> None:
    started: list[str] = []

    def command(
        role: str, ready: int | None, slot: int | None
    ) -> tuple[list[str], tuple[int, ...]]:
        started.append(role)
        code = "import time; time.sleep(60)" if len(started) == 1 else "raise SystemExit(3)"
        return [sys.executable, "-c", code], ()

    supervisor = Supervisor(1, False, command, {}, 1.0)
    old = supervisor._spawn("api")
    supervisor._reload()
    try:
        assert started == ["api", "api"]  # a new one was tried
        assert supervisor.children == [old] and old.process.poll() is None
        assert supervisor.due == []  # the failed one is not started again
    finally:
        supervisor._stop([old])


def test_a_supervisor_whose_api_processes_cannot_start_stops_with_status_1() -> None:
    supervisor = Supervisor(2, True, _exiting(3), {}, 1.0)
    started = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - started < 30  # not retried until the start timeout
    assert supervisor.children == [] and supervisor.due == []  # the worker stopped too


def test_metrics_folders_of_killed_supervisors_are_removed_running_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f"{METRICS_PREFIX}{dead.pid}-abc"
    running = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"
    for folder in (abandoned, running):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    _remove_abandoned_folders()
    assert not abandoned.exists() and running.exists()
