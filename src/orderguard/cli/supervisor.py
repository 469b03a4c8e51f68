"""``orderguard serve --processes N`` on PostgreSQL: one supervisor, N API processes and one
worker process.

The supervisor binds the listening socket once and every API process inherits it: they
accept from the kernel's one queue of connections, so a process that stops (for a reload,
or because it crashed) leaves nothing behind in a queue of its own (``SO_REUSEPORT`` gives
each process its own queue, whose connections are reset when it closes); each takes one
connection at a time and leaves the next to a process holding fewer, as the accept board
they share says (:mod:`orderguard.api.accepting`: the supervisor hands out the slots and
clears the slot of a process that exited). The API processes run no worker; the worker
runs alone in its own process.

- A process that exits unexpectedly is started again, after a pause that doubles (from
  half a second to thirty) while it keeps dying within ten seconds of its start.
- SIGTERM or SIGINT: the socket is closed, each process stops accepting, finishes the
  requests it holds (at most ``drain`` seconds) and exits; then the supervisor exits 0.
- SIGHUP: the API processes are replaced one at a time (a new one serves before the one
  it replaces is stopped, and that one drains), then the worker; a new process that fails
  to start ends the reload and the running ones stay.
- Each process is killed when the supervisor dies, however it dies (Linux).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from orderguard.api.accepting import AWAY, AcceptBoard

log = logging.getLogger("orderguard.supervisor")

#: Seconds an API process may take to serve after it was started.
START_TIMEOUT_S = 60.0
#: The first pause before a process that died is started again, and the longest.
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.5, 30.0
#: A process that lived this long before dying is started again after the first pause.
STABLE_S = 10.0
#: Seconds of a process's own drain after which the supervisor kills it.
KILL_AFTER_DRAIN_S = 10.0
#: How often the supervisor looks at its processes.
TICK_S = 0.05

#: Builds the command of a process: its role (``api`` or ``worker``), the descriptor it
#: writes ``ready`` to and its slot on the accept board (API processes), to the command line
#: and the descriptors it inherits.
Command = Callable[[str, int | None, int | None], tuple[list[str], tuple[int, ...]]]


@dataclass
class Child:
    """One process the supervisor started."""

    role: str
    process: subprocess.Popen[bytes]
    #: The read end of the pipe the process writes ``ready`` to (``None`` once read).
    ready_pipe: int | None
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    #: Stopped on purpose (reload, shutdown): its exit is no crash.
    stopping: bool = False
    #: Started by a reload: until it is ready, its death ends the reload, no restart.
    on_trial: bool = False
    #: Its slot on the accept board (API processes: the lowest no live one holds).
    slot: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Supervisor:
    """Runs ``processes`` API processes and (with ``worker``) one worker process."""

    processes: int
    worker: bool
    command: Command
    env: dict[str, str]
    drain_s: float
    #: Called with the pid of each process that exited (its live metrics are dropped).
    exited: Callable[[int], None] = lambda pid: None
    #: Called once the supervisor starts stopping (the listening sockets are closed).
    closing: Callable[[], None] = lambda: None
    #: Where the API processes post the connections they hold
    #: (:mod:`orderguard.api.accepting`); a process that exited is marked away on it.
    board: AcceptBoard | None = None
    children: list[Child] = field(default_factory=list)
    #: Restarts waiting for their time: (role, when).
    due: list[tuple[str, float]] = field(default_factory=list)
    pauses: dict[str, float] = field(default_factory=dict)
    stop_requested: bool = False
    reload_requested: bool = False

    # --- running ------------------------------------------------------------------------

    def run(self) -> int:
        """Start every process, watch them until SIGTERM/SIGINT, then stop them; the exit
        status (0 after a clean stop, 1 when the processes could not start)."""
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            return self._serve()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _serve(self) -> int:
        first = [self._spawn("api") for _ in range(self.processes)]
        if self.worker:
            self._spawn("worker")
        started = [child for child in first if self._await_ready(child)]
        if self.stop_requested:  # stopped while starting
            self._shutdown()
            return 0
        if not started:  # a configuration or code that cannot serve: no use trying again
            log.error(
                "no API process started (exit statuses %s): stopping",
                ", ".join(str(c.process.returncode) for c in first),
            )
            self._shutdown()
            return 1
        log.info(
            "serving with %d API processes (pids %s)%s; SIGHUP reloads them one at a time",
            self.processes,
            ", ".join(str(c.pid) for c in self.children if c.role == "api"),
            f" and a worker (pid {self._workers()[0].pid})" if self._workers() else "",
        )
        while not self.stop_requested:
            self._tick()
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
            time.sleep(TICK_S)
        self._shutdown()
        return 0

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stop_requested = True

    # --- processes ----------------------------------------------------------------------

    def _spawn(self, role: str) -> Child:
        read, write = os.pipe() if role == "api" else (None, None)
        slot = None
        if role == "api":
            taken = {c.slot for c in self.children if c.slot is not None}
            slot = next(n for n in range(len(taken) + 1) if n not in taken)
        argv, fds = self.command(role, write, slot)
        try:
            process = subprocess.Popen(
                argv, env=self.env, pass_fds=fds, process_group=0, stdin=subprocess.DEVNULL
            )
        finally:
            if write is not None:
                os.close(write)
        if read is not None:
            os.set_blocking(read, False)
        child = Child(role, process, read, ready=role == "worker", slot=slot)
        self.children.append(child)
        log.info("started the %s process %d", "API" if role == "api" else "worker", child.pid)
        return child

    def _workers(self) -> list[Child]:
        return [c for c in self.children if c.role == "worker" and not c.stopping]

    def _check_ready(self, child: Child) -> None:
        if child.ready_pipe is None:
            return
        try:
            said = os.read(child.ready_pipe, 64)
        except BlockingIOError:
            return
        os.close(child.ready_pipe)
        child.ready_pipe = None
        child.ready = said.startswith(b"ready")

    def _tick(self) -> None:
        """Read who became ready, notice who exited, start again who is due."""
        now = time.monotonic()
        for child in list(self.children):
            self._check_ready(child)
            status = child.process.poll()
            if status is None:
                continue
            self._forget(child)
            if child.stopping or child.on_trial:
                continue
            lived = now - child.started
            pause = self.pauses.get(child.role, 0.0)
            pause = (
                FIRST_PAUSE_S if lived >= STABLE_S or not pause else min(pause * 2, LONGEST_PAUSE_S)
            )
            self.pauses[child.role] = pause
            log.warning(
                "the %s process %d exited with status %s after %.1fs; starting another in %.1fs",
                child.role,
                child.pid,
                status,
                lived,
                pause,
            )
            self.due.append((child.role, now + pause))
        for role, when in list(self.due):
            if when <= now and not self.stop_requested:
                self.due.remove((role, when))
                self._spawn(role)

    def _forget(self, child: Child) -> None:
        self.children.remove(child)
        if self.board is not None and child.slot is not None and child.slot < self.board.slots:
            self.board.post(child.slot, AWAY)  # it no longer accepts, whatever it said
        if child.ready_pipe is not None:
            os.close(child.ready_pipe)
            child.ready_pipe = None
        self.exited(child.pid)

    def _await_ready(self, child: Child) -> bool:
        """Whether ``child`` came to serve (watching the others meanwhile)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop_requested:
            self._tick()
            if child.ready:
                return True
            if child not in self.children:
                return False
            time.sleep(TICK_S)
        return False

    def _stop(self, children: list[Child]) -> None:
        """SIGTERM each of ``children`` and wait until they exit (killed if they outlast
        their drain)."""
        for child in children:
            child.stopping = True
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_s + KILL_AFTER_DRAIN_S
        while any(c in self.children for c in children):
            if time.monotonic() > deadline:
                for child in children:
                    if child.process.poll() is None:
                        log.warning(
                            "the %s process %d outlasted its drain: killed", child.role, child.pid
                        )
                        child.process.kill()
            self._tick()
            time.sleep(TICK_S)

    def _reload(self) -> None:
        """Replace the API processes one at a time, then the worker."""
        log.info("reload: replacing the API processes one at a time")
        for old in [c for c in self.children if c.role == "api" and not c.stopping]:
            if self.stop_requested:
                return  # the shutdown stops every process
            new = self._spawn("api")
            new.on_trial = True
            if not self._await_ready(new):
                if self.stop_requested:
                    new.on_trial = False
                    return
                log.error(
                    "reload abandoned: the new API process %d did not start (exit status %s); "
                    "the running processes stay",
                    new.pid,
                    new.process.returncode,
                )
                if new in self.children:
                    self._stop([new])
                return
            new.on_trial = False
            self._stop([old])
        workers = self._workers()
        if workers and not self.stop_requested:
            self._stop(workers)
            self._spawn("worker")
        log.info("reload done")

    def _shutdown(self) -> None:
        self.stop_requested = True
        log.info("stopping: requests in flight get up to %.0fs to finish", self.drain_s)
        self.closing()
        self.due.clear()
        self._stop(list(self.children))
        log.info("stopped")
