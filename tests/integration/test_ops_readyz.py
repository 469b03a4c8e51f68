"""``/readyz`` says which check fails, and recovers by itself, against real PostgreSQL.

The database is a private cluster (``tests.pgcluster``): stopping the shared server would
break every other test running beside this one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from orderguard.api.server import running_server
from orderguard.bootstrap import build_app, wire
from orderguard.config import Settings
from orderguard.storage import migrate
from orderguard.storage.database import transaction
from tests.conftest import LOCAL_URL, open_storage, service_missing
from tests.integration.conftest import memory_providers
from tests.pgcluster import ClusterUnavailable, PgCluster, private_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    try:
        with private_cluster() as running:
            yield running
    except ClusterUnavailable as exc:
        service_missing("PostgreSQL server binaries", str(exc))


async def _ready(client: httpx.AsyncClient, want: int, *, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = await client.get("/readyz")
        if answer.status_code == want or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def test_readyz_names_the_database_while_postgres_is_stopped_and_recovers_after(
    cluster: PgCluster, tmp_path: Path
) -> None:
    storage = await open_storage(cluster.url)  # migrated
    await storage.close()
    settings = Settings(
        database_url=cluster.url,
        sandbox_db=str(tmp_path / "sandbox.db"),
        worker_round_s=0.2,
    )
    async with (
        running_server(build_app(settings=settings, worker=True)) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        ready = await _ready(client, 200, within=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert {c["name"]: c["status"] for c in ready.json()["checks"]} == {
            "database": "pass",
            "schema": "pass",
            "worker": "pass",
        }
        assert (await client.get("/healthz")).status_code == 200

        await asyncio.to_thread(cluster.stop)
        down = await _ready(client, 503, within=10)
        assert down.status_code == 503, down.text
        assert down.json()["failing"] == ["database"]
        assert "unreachable" in down.json()["checks"][0]["detail"]
        assert (await client.get("/healthz")).status_code == 200, "the process is still alive"

        await asyncio.to_thread(cluster.start)
        back = await _ready(client, 200, within=30)
        assert back.status_code == 200, back.text
        assert back.json()["failing"] == []


async def test_readyz_names_the_schema_when_the_database_is_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'og.db'}"
    storage = await open_storage(url)
    now = datetime.now(UTC)
    async with storage() as uow:
        await uow.leases.beat("worker-1", started_at=now, now=now)
        await uow.commit()
    async with transaction(storage.db) as conn:  # one migration behind this code
        await conn.execute(
            "DELETE FROM schema_migrations WHERE version = :v", {"v": migrate.latest_version()}
        )
    container = wire(Settings(database_url=url), storage, memory_providers())
    transport = httpx.ASGITransport(app=build_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        answer = await client.get("/readyz")
    await storage.close()
    assert answer.status_code == 503, answer.text
    assert answer.json()["failing"] == ["schema"]
    schema = next(c for c in answer.json()["checks"] if c["name"] == "schema")
    assert schema["fix"] == "orderguard migrate"


async def test_readyz_names_the_worker_when_its_heartbeat_is_stale(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'og.db'}"
    storage = await open_storage(url)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with storage() as uow:
        await uow.leases.beat("worker-1", started_at=long_ago, now=long_ago)
        await uow.commit()
    settings = Settings(database_url=url)
    transport = httpx.ASGITransport(
        app=build_app(container=wire(settings, storage, memory_providers()))
    )
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        stale = await client.get("/readyz")
        api_only = wire(replace(settings, ready_requires_worker=False), storage, memory_providers())
        other = httpx.ASGITransport(app=build_app(container=api_only))
        async with httpx.AsyncClient(transport=other, base_url=LOCAL_URL) as api_client:
            without_worker = await api_client.get("/readyz")
    await storage.close()
    assert stale.status_code == 503
    assert stale.json()["failing"] == ["worker"]
    assert "last heartbeat 300s ago" in stale.text
    assert without_worker.status_code == 200, without_worker.text


async def test_a_problem_report_never_echoes_personal_data(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'og.db'}")
    app = build_app(container=wire(Settings(), storage, memory_providers()))
    body = {"currency": "EUR", "items": "Ana Silva <ana@example.pt> +351 912 345 678"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=LOCAL_URL
    ) as client:
        answer = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": "k1"})
    await storage.close()
    assert answer.status_code == 422
    assert "ana@example.pt" not in answer.text and "912 345 678" not in answer.text
