"""The processes a demo (or the chaos test) runs: the sandbox provider, the API, the worker.

Each is a real ``orderguard`` subprocess with its output in a log file, started with a
clean environment: no ``ORDERGUARD_*`` variable of the caller's shell leaks in (a real
provider key or SMTP server must never meet simulated shoppers), only the settings given.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orderguard.api.server import free_port
from orderguard.providers import labs

WEBHOOK_SECRET = "whsec_demo"


class StackError(Exception):
    """A process of the stack would not start or died."""


def clean_env(**settings: str) -> dict[str, str]:
    """The caller's environment without ``ORDERGUARD_*``, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")}
    for name in labs.sandbox_variables():  # test-only: the sandbox records its answers
        if name in os.environ:
            env[name] = os.environ[name]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


@dataclass
class Proc:
    """``python -m orderguard ARGS...``, output in ``<cwd>/<name>.log``; ``wrap`` goes in
    front of the command (``ip netns exec NS`` runs it in a network namespace)."""

    name: str
    args: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    wrap: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrap, sys.executable, "-m", "orderguard", *self.args],
                env=dict(self.env),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would: no clean-up runs."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; always reaps the process."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_until_up(proc: Proc, url: str, *, within_s: float = 30.0) -> None:
    """Wait for ``url`` to answer, failing early if ``proc`` dies."""
    deadline = time.monotonic() + within_s
    while True:
        if not proc.alive():
            raise StackError(f"{proc.name} exited:\n{proc.log_tail()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise StackError(f"{proc.name} did not answer at {url}:\n{proc.log_tail()}")
        time.sleep(0.05)


def sandbox(
    cwd: Path, *, profile: Path | str, seed: int, webhook_url: str, wait: bool = True
) -> tuple[Proc, str]:
    """``orderguard sandbox-provider`` on a free port; the process and its base URL (with
    ``wait=False`` it may still be starting: see :func:`wait_until_up`)."""
    port = free_port()
    args = [
        "sandbox-provider",
        "--port", str(port), "--faults", str(profile), "--seed", str(seed),
        "--db", str(cwd / "sandbox.db"), "--webhook-url", webhook_url,
        "--webhook-secret", WEBHOOK_SECRET,
    ]  # fmt: skip
    proc = Proc("sandbox", args, clean_env(), cwd).start()
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_until_up(proc, f"{url}/_sandbox/faults")
    return proc, url


def wallet_sandbox(
    cwd: Path, provider: str, public_url: str, *, profile: Path | str, seed: int
) -> tuple[Proc, str, dict[str, str]]:
    """``orderguard sandbox-provider --provider PROVIDER`` on a free port with the fault
    ``profile`` (still starting: see :func:`wait_until_up`): the process, its base URL, and
    the settings that point orderguard at it (``--print-config``'s, the keys it makes in
    ``cwd`` included) with the notifications sent to ``public_url``'s route for it."""
    port = free_port()
    ledger_path = str(cwd / f"sandbox-{provider}.db")  # its keys go in a folder beside it
    config = labs.sandbox_config(provider, "127.0.0.1", port, ledger_path, WEBHOOK_SECRET)
    settings = dict(line.split("=", 1) for line in config.splitlines() if "=" in line)
    settings[f"ORDERGUARD_{provider.upper()}_NOTIFY_URL"] = (
        f"{public_url.rstrip('/')}/v1/webhooks/{provider}"
    )
    args = [
        "sandbox-provider", "--provider", provider, "--port", str(port), "--db", ledger_path,
        "--faults", str(profile), "--seed", str(seed),
    ]  # fmt: skip
    proc = Proc(f"sandbox-{provider}", args, clean_env(), cwd).start()
    return proc, f"http://127.0.0.1:{port}", settings


def service_env(
    database_url: str, sandbox_url: str, public_url: str, **extra: str
) -> dict[str, str]:
    """Settings of an API or worker process charging at the sandbox."""
    return clean_env(
        ORDERGUARD_DATABASE_URL=database_url,
        **labs.sandbox_env(sandbox_url, WEBHOOK_SECRET),
        ORDERGUARD_PUBLIC_URL=public_url,
        **extra,
    )


def command(cwd: Path, env: Mapping[str, str], *args: str, timeout: float = 300) -> str:
    """``orderguard ARGS...`` to completion; its output, or StackError with it."""
    done = subprocess.run(
        [sys.executable, "-m", "orderguard", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"orderguard {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def migrate(cwd: Path, env: Mapping[str, str]) -> None:
    """``orderguard migrate``."""
    command(cwd, env, "migrate")


def api(
    cwd: Path,
    env: Mapping[str, str],
    port: int,
    *,
    worker: bool,
    name: str = "api",
    wait: bool = True,
    processes: int | None = None,
) -> Proc:
    """``orderguard serve`` on ``port`` (with its worker unless ``worker=False``), in
    ``processes`` API processes (None: serve's default; more than one runs under a
    supervisor, PostgreSQL only)."""
    args = ["serve", "--port", str(port)] + ([] if worker else ["--no-worker"])
    args += [] if processes is None else ["--processes", str(processes)]
    proc = Proc(name, args, env, cwd).start()
    if wait:
        wait_until_up(proc, f"http://127.0.0.1:{port}/v1/orders?limit=1")
    return proc


def worker(cwd: Path, env: Mapping[str, str], *, name: str = "worker") -> Proc:
    """``orderguard worker``."""
    return Proc(name, ["worker"], env, cwd).start()


def ledger(sandbox_url: str) -> dict[str, list[dict[str, Any]]]:
    """The sandbox's ledger: every payment intent, charge and refund it really holds (a
    wallet's: every trade, refund and notification)."""
    response = httpx.get(f"{sandbox_url}/ledger", timeout=60)
    response.raise_for_status()
    book: dict[str, list[dict[str, Any]]] = response.json()
    return book


def fault_counts(sandbox_url: str) -> dict[str, int]:
    """Faults the sandbox (any provider's) injected, by kind."""
    response = httpx.get(f"{sandbox_url}/_sandbox/faults", timeout=60)
    response.raise_for_status()
    counts: dict[str, int] = response.json()["counts"]
    return counts


def fault_log(sandbox_url: str) -> list[dict[str, str]]:
    """Every fault a wallet sandbox injected, in order (``kind``, ``detail``)."""
    response = httpx.get(f"{sandbox_url}/_sandbox/faults", timeout=60)
    response.raise_for_status()
    log: list[dict[str, str]] = response.json().get("log") or []
    return log


def redact(url: str) -> str:
    """A database URL fit to print."""
    from orderguard.storage.database import redact_url

    return redact_url(url)
