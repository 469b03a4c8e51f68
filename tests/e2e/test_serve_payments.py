"""``orderguard serve`` charges with nothing configured (an in-process sandbox), and talks
to Stripe (here: a separate ``orderguard sandbox-provider`` process) once given a key."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from orderguard.api.server import free_port
from tests.e2e.procs import ORDERGUARD, clean_env, serving
from tests.factories import key, order_body

pytestmark = pytest.mark.slow


def _paid_order(url: str) -> dict[str, object]:
    body = order_body(payment={"method": "pm_card_visa"})
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.post("/v1/orders", json=body, headers=key())
    assert response.status_code == 201, response.text
    order: dict[str, object] = response.json()
    return order


def test_serve_charges_through_its_in_process_sandbox_with_nothing_configured(
    sqlite_url: str, tmp_path: Path
) -> None:
    with serving(clean_env(sqlite_url), tmp_path) as server:
        order = _paid_order(server.url)
    assert order["state"] == "paid"
    [attempt] = order["payment_attempts"]  # type: ignore[misc]
    assert attempt["provider"] == "sandbox"
    assert (tmp_path / "orderguard-sandbox.db").is_file()


def test_a_stripe_key_and_base_url_switch_serve_to_that_provider(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    sandbox = subprocess.Popen(
        [
            ORDERGUARD,
            "sandbox-provider",
            "--port",
            str(port),
            "--faults",
            "none",
            "--db",
            str(tmp_path / "provider.db"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/ledger")
        env = clean_env(
            sqlite_url, ORDERGUARD_STRIPE_API_KEY="sk_test_e2e", ORDERGUARD_STRIPE_BASE_URL=base
        )
        with serving(env, tmp_path) as server:
            order = _paid_order(server.url)
        ledger = httpx.get(f"{base}/ledger").json()
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    assert order["state"] == "paid"
    assert order["payment_attempts"][0]["provider"] == "stripe"  # type: ignore[index]
    succeeded = [
        c
        for c in ledger["charges"]
        if c["status"] == "succeeded" and c["metadata"]["order_id"] == order["id"]
    ]
    assert len(succeeded) == 1
    assert not (tmp_path / "orderguard-sandbox.db").exists()


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")
