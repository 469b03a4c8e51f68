"""``orderguard doctor`` against a healthy deployment and against broken ones.

Healthy: a migrated database, ``orderguard serve`` with its worker, a Stripe-compatible
provider (``orderguard sandbox-provider``) with a valid key. Broken: a wrong database URL;
a refused provider key with the worker stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.ops_harness import WEBHOOK_SECRET, sandbox_provider
from tests.e2e.procs import Server, clean_env, run_cli

pytestmark = pytest.mark.slow


def doctor(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, dict[str, str]], str]:
    """Run ``orderguard doctor --json``: exit code, checks by name, and the text output."""
    done = run_cli("doctor", "--json", env=env, cwd=cwd)
    report = json.loads(done.stdout)
    text = run_cli("doctor", env=env, cwd=cwd)
    assert text.returncode == done.returncode, text.stdout + text.stderr
    return done.returncode, {c["name"]: c for c in report["checks"]}, text.stdout


def test_doctor_passes_a_healthy_deployment_and_names_each_failure_of_a_broken_one(
    database_url: str, tmp_path: Path
) -> None:
    server = Server(env={}, cwd=tmp_path)
    with sandbox_provider(tmp_path, f"{server.url}/v1/webhooks/stripe") as provider:
        env = clean_env(
            database_url,
            ORDERGUARD_PUBLIC_URL=server.url,
            ORDERGUARD_STRIPE_API_KEY="sk_test_doctor",
            ORDERGUARD_STRIPE_BASE_URL=provider,
            ORDERGUARD_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            ORDERGUARD_WORKER_ROUND_S="0.2",
        )
        assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
        server.env = env
        server.start()
        try:
            time.sleep(0.5)  # the worker's first heartbeat
            code, checks, text = doctor(env, tmp_path)
        finally:
            server.stop()
        assert code == 0, text
        assert {c["status"] for c in checks.values()} <= {"pass", "skip"}, text
        for name in ("database", "schema", "worker", "provider stripe", "webhook secret",
                     "webhook url", "stuck orders", "flagged orders"):  # fmt: skip
            assert checks[name]["status"] == "pass", text
        assert checks["smtp"]["status"] == "skip" and checks["nats"]["status"] == "skip"
        assert "[pass] provider stripe: reachable, credentials accepted" in text

        # the worker is gone and the key is wrong
        broken = {**env, "ORDERGUARD_STRIPE_API_KEY": "sk_live_revoked"}
        code, checks, text = doctor(broken, tmp_path)
    assert code == 2, text
    assert checks["provider stripe"]["status"] == "fail", text
    assert "credentials refused" in checks["provider stripe"]["detail"]
    assert "ORDERGUARD_STRIPE_API_KEY" in checks["provider stripe"]["fix"]
    assert checks["worker"]["status"] == "fail", text
    assert "orderguard worker" in checks["worker"]["fix"]
    assert checks["database"]["status"] == "pass"
    for line in text.splitlines():
        if line.startswith("[FAIL]"):
            assert " -> " in line, f"a failure without its fix: {line}"
    assert "[FAIL] provider stripe:" in text and "[FAIL] worker:" in text


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/orderguard", "sqlite:///./missing/orderguard.db"],
    ids=["postgres-nobody-listens", "sqlite-no-file"],
)
def test_doctor_names_a_wrong_database_url_and_exits_2(url: str, tmp_path: Path) -> None:
    code, checks, text = doctor(clean_env(url), tmp_path)
    assert code == 2, text
    assert checks["database"]["status"] == "fail", text
    assert "ORDERGUARD_DATABASE_URL" in checks["database"]["fix"]
    assert checks["schema"]["status"] == "skip"
    assert not (tmp_path / "missing").exists(), "doctor must not create a database"


def test_doctor_checks_smtp_and_nats_when_configured(tmp_path: Path) -> None:
    """NATS is the shared test server; SMTP points where nothing listens."""
    import asyncio

    from orderguard.observability.doctor_network import greets as _greets

    nats = asyncio.run(_greets("nats", "nats://127.0.0.1:4222", 4222, b"INFO"))
    smtp = asyncio.run(_greets("smtp", "smtp://127.0.0.1:1", 25, b"220"))
    assert smtp.status == "fail" and "127.0.0.1:1" in smtp.detail
    if nats.status != "pass":
        from tests.conftest import service_missing

        service_missing("NATS", nats.detail)
    assert nats.detail == "127.0.0.1:4222 answers"
