"""With ``PROMETHEUS_MULTIPROC_DIR`` set, any process answers ``/metrics`` for all of them:
two API processes and a worker share one database and one metrics folder."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import ORDERGUARD, Server, clean_env
from tests.factories import key, order_body

pytestmark = pytest.mark.slow


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_one_api_process_reports_the_intake_of_another_and_the_workers_checks(
    sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = clean_env(
        sqlite_url,
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        ORDERGUARD_WORKER_ROUND_S="0.2",
        ORDERGUARD_METRICS_CACHE_S="0",
    )
    first = Server(env={**env, "ORDERGUARD_SANDBOX_DB": str(tmp_path / "a.db")}, cwd=tmp_path)
    second = Server(env={**env, "ORDERGUARD_SANDBOX_DB": str(tmp_path / "b.db")}, cwd=tmp_path)
    first.env = {**first.env, "ORDERGUARD_PUBLIC_URL": first.url}
    second.env = {**second.env, "ORDERGUARD_PUBLIC_URL": second.url}
    for server in (first, second):
        server.start()
    worker = subprocess.Popen(
        [ORDERGUARD, "worker"], env={**env, "ORDERGUARD_SANDBOX_DB": str(tmp_path / "w.db")},
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        answer = httpx.post(
            f"{first.url}/v1/orders",
            json=order_body(payment={"method": "pm_card_visa"}),
            headers=key(),
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 30
        while True:
            seen = _samples(second.url)
            if ("orderguard_check_status", (("check", "database"),)) in seen:
                break
            assert time.monotonic() < deadline, "the worker's checks never showed up"
            time.sleep(0.3)
        assert httpx.get(f"{second.url}/readyz", timeout=10).status_code == 200
    finally:
        worker.terminate()
        worker.wait(15)
        for server in (first, second):
            server.stop()
    # served by the second process: the first one's intake, the worker's checks
    assert seen[("orderguard_intake_requests_total", (("outcome", "created"),))] == 1
    assert seen[("orderguard_orders", (("state", "paid"),))] == 1
    assert seen[("orderguard_check_status", (("check", "database"),))] in {0, 1}  # 1: slow
    assert seen[("orderguard_check_status", (("check", "schema"),))] == 0
    assert any(folder.glob("*.db")), "metric values live in the shared folder"
    # the database gauges' reading is shared there too (observability/shared_gauges.py)
    assert b"orderguard_orders" in (folder / "orderguard-db-gauges.prom").read_bytes()
