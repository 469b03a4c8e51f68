"""Run the real ``orderguard`` command in a subprocess: the CLI and ``orderguard serve``.

Every process gets a clean environment (no inherited ``ORDERGUARD_*`` variables), runs in
the test's own directory (so no stray ``orderguard.toml`` is read) and writes its output
to a log file there, which is attached to assertion messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from orderguard.api.server import free_port
from orderguard.providers.stripe.sandbox.recording import ENV as CONTRACT_LOG

#: The console script installed next to the interpreter running the tests.
ORDERGUARD = str(Path(sys.executable).with_name("orderguard"))
#: Seconds a server may take to answer ``/healthz`` after it was started.
START_TIMEOUT = 60.0


def clean_env(database_url: str, **extra: str) -> dict[str, str]:
    """The parent's environment without ``ORDERGUARD_*``, plus ``database_url`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")}
    if CONTRACT_LOG in os.environ:  # test-only: the sandbox records what it answers
        env[CONTRACT_LOG] = os.environ[CONTRACT_LOG]
    env["ORDERGUARD_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 60.0,
    program: str = ORDERGUARD,
) -> subprocess.CompletedProcess[str]:
    """``orderguard ARGS...`` to completion, output captured as text; ``program`` is the
    console script to run (another installation's, for the installed-package test)."""
    return subprocess.run(
        [program, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """One ``orderguard serve`` process (of ``program``, the console script to run)."""

    env: Mapping[str, str]
    cwd: Path
    host: str = "127.0.0.1"
    #: 0: one :func:`free_port` finds free on ``host``.
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    program: str = ORDERGUARD
    #: More ``serve`` options (e.g. ``--metrics-port``).
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the current process writes its output."""
        return self.cwd / f"serve-{self.port}-{self.starts}.log"

    def log(self) -> str:
        """The output of the most recent process (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to serve."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.program,
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    *self.options,
                ],
                env=dict(self.env),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def start(self) -> Server:
        """Start the process and wait until ``/healthz`` answers."""
        process = self.spawn()
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise AssertionError(
                        f"orderguard serve exited with {process.returncode}:\n{self.log()}"
                    )
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise AssertionError(f"orderguard serve did not start in {START_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> int | None:
        """SIGKILL the process (no shutdown handlers run); return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """Stop the process gracefully (SIGTERM), killing it if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return self.kill()
        return self.process.returncode

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for a process that is expected to exit by itself."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"orderguard serve did not exit:\n{self.log()}") from None


@contextmanager
def serving(
    env: Mapping[str, str], cwd: Path, *, host: str = "127.0.0.1", options: tuple[str, ...] = ()
) -> Iterator[Server]:
    """A started server, always stopped afterwards."""
    server = Server(env=env, cwd=cwd, host=host, options=options)
    try:
        yield server.start()
    finally:
        server.stop()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # the field after the command (which may hold spaces) is the state, then the parent
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (neither gone nor a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def still_running(pids: list[int], *, within: float) -> list[int]:
    """Those of ``pids`` still running after waiting up to ``within`` seconds for them all
    to end."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [pid for pid in pids if alive(pid)]
