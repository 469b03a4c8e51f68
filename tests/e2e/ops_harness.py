"""Helpers of the operations end-to-end tests: a sandbox provider process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from orderguard.api.server import free_port
from tests.e2e.procs import ORDERGUARD

#: What the sandbox signs its webhooks with; serve must be given the same secret.
WEBHOOK_SECRET = "whsec_ops_e2e"


@contextmanager
def sandbox_provider(tmp_path: Path, webhook_url: str) -> Iterator[str]:
    """``orderguard sandbox-provider`` in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            ORDERGUARD,
            "sandbox-provider",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "sb.db"),
            "--webhook-url",
            webhook_url,
            "--webhook-secret",
            WEBHOOK_SECRET,
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/ledger", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the sandbox provider did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)
