"""The database gauges: what the collector reads, the outbox and reconciliation hooks, the
cache, and the worker's doctor checks exported as metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderguard.bootstrap import build_app, wire
from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.states import OrderState
from orderguard.observability.collector import DatabaseCollector
from orderguard.observability.metrics import process_metrics_text
from orderguard.observability.worker_checks import run_checks
from orderguard.storage.database import transaction
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import new_order
from tests.integration.conftest import memory_providers

NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[SqlStorage]:
    """SQL storage on each back end (the database gauges exist for SQL storage only)."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    sql = await open_storage(url)
    try:
        yield sql
    finally:
        await sql.close()


class RelayStats:
    """What the relay branch's reader will answer (numbers given by the test)."""

    async def lag_seconds(self, now: datetime) -> float | None:
        return 42.5

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        return {"email": 3, "stream": 0}

    async def delivery(self, now: datetime) -> tuple[float | None, dict[str, int] | None]:
        return await self.lag_seconds(now), await self.dead_letters_by_sink()


class Exceptions:
    async def exceptions_by_category(self) -> dict[str, int] | None:
        return {"amount_mismatch": 2}

    async def open_exceptions_by_category(self) -> dict[str, int] | None:
        return {"amount_mismatch": 1, "duplicate": 0}

    async def exception_counts(self) -> tuple[dict[str, int] | None, dict[str, int] | None]:
        return await self.exceptions_by_category(), await self.open_exceptions_by_category()


class Untracked:
    async def lag_seconds(self, now: datetime) -> float | None:
        return None

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        return None

    async def exceptions_by_category(self) -> dict[str, int] | None:
        return None

    async def open_exceptions_by_category(self) -> dict[str, int] | None:
        return None

    async def delivery(self, now: datetime) -> tuple[float | None, dict[str, int] | None]:
        return None, None

    async def exception_counts(self) -> tuple[dict[str, int] | None, dict[str, int] | None]:
        return None, None


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def _stored(storage: SqlStorage) -> None:
    """An old unknown payment (flagged), a fresh pending one due for a recheck, one paid."""
    old = new_order(at=NOW - timedelta(hours=2))
    old.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW - timedelta(hours=2))
    old.move_to(OrderState.PAYMENT_UNKNOWN, cause=Cause.API, at=NOW - timedelta(hours=2))
    old.flag(FlagReason.PAYMENT_UNRESOLVED, "", cause=Cause.JANITOR, at=NOW)
    fresh = new_order(at=NOW - timedelta(minutes=5))
    fresh.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW - timedelta(minutes=5))
    paid = new_order(at=NOW)
    paid.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=NOW)
    paid.move_to(OrderState.PAID, cause=Cause.API, at=NOW)
    for order in (old, fresh, paid):
        async with storage() as uow:
            await uow.orders.add(order)
            await uow.commit()


async def test_the_collector_reads_orders_ages_flags_backlog_and_the_hooks(
    storage: SqlStorage,
) -> None:
    await _stored(storage)
    collector = DatabaseCollector(
        storage.stats,
        watched=frozenset({OrderState.PAYMENT_PENDING, OrderState.PAYMENT_UNKNOWN}),
        shortest_wait=timedelta(seconds=30),
        outbox=RelayStats(),
        reconciliation=Exceptions(),
    )
    m = _samples(await collector.text(NOW))
    assert m[("orderguard_orders", (("state", "paid"),))] == 1
    assert m[("orderguard_orders", (("state", "payment_pending"),))] == 1
    assert m[("orderguard_orders", (("state", "cancelled"),))] == 0
    assert m[("orderguard_open_orders", (("age", "1m-10m"), ("state", "payment_pending")))] == 1
    assert m[("orderguard_open_orders", (("age", "1h-1d"), ("state", "payment_unknown")))] == 1
    assert m[("orderguard_open_orders", (("age", "0-1m"), ("state", "payment_unknown")))] == 0
    oldest = m[("orderguard_oldest_open_order_age_seconds", (("state", "payment_pending"),))]
    assert 299 <= oldest <= 301
    # the flagged order is in the review queue: not counted as the oldest unattended one
    assert m[("orderguard_oldest_open_order_age_seconds", (("state", "payment_unknown"),))] == 0
    reason = (("reason", "payment_unresolved"),)
    assert m[("orderguard_flagged_orders", reason)] == 1
    assert m[("orderguard_janitor_backlog", ())] == 2  # both were last checked long enough ago
    assert 7200 - 31 <= m[("orderguard_janitor_lag_seconds", ())] <= 7200
    assert m[("orderguard_outbox_lag_seconds", ())] == 42.5
    assert m[("orderguard_outbox_dead_letters", (("sink", "email"),))] == 3
    assert m[("orderguard_reconciliation_exceptions", (("category", "amount_mismatch"),))] == 2
    still = "orderguard_reconciliation_exceptions_open"
    assert m[(still, (("category", "amount_mismatch"),))] == 1
    assert m[(still, (("category", "duplicate"),))] == 0


async def test_untracked_sources_leave_their_metrics_out_and_readings_are_cached(
    storage: SqlStorage,
) -> None:
    collector = DatabaseCollector(
        storage.stats,
        watched=frozenset({OrderState.PAYMENT_PENDING}),
        shortest_wait=timedelta(seconds=30),
        outbox=Untracked(),
        reconciliation=Untracked(),
        ttl_s=60,
    )
    first = _samples(await collector.text(NOW))
    assert not any(name.startswith("orderguard_outbox") for name, _ in first)
    assert not any(name.startswith("orderguard_reconciliation") for name, _ in first)
    assert first[("orderguard_orders", (("state", "paid"),))] == 0
    await _stored(storage)
    cached = _samples(await collector.text(NOW))
    assert cached[("orderguard_orders", (("state", "paid"),))] == 0, "within the ttl: cached"


async def test_the_worker_exports_its_doctor_checks(storage: SqlStorage) -> None:
    container = wire(Settings(public_url="http://127.0.0.1:1"), storage, memory_providers())
    checks = {c.name: c for c in await run_checks(container)}
    assert checks["worker"].status == "fail"  # no heartbeat yet
    assert checks["provider memory"].status == "pass"
    m = _samples(process_metrics_text())
    assert m[("orderguard_check_status", (("check", "worker"),))] == 2
    assert m[("orderguard_check_status", (("check", "provider memory"),))] == 0
    assert m[("orderguard_check_status", (("check", "webhook url"),))] == 1
    assert m[("orderguard_check_run_timestamp_seconds", ())] > NOW.timestamp() - 1
    async with transaction(storage.db) as conn:  # a worker beats: the check passes
        await conn.execute(
            "INSERT INTO worker_heartbeats (worker_id, started_at, seen_at) "
            "VALUES ('w', :now, :now)",
            {"now": datetime.now(UTC)},
        )
    await run_checks(container)
    assert (
        _samples(process_metrics_text())[("orderguard_check_status", (("check", "worker"),))] == 0
    )


async def test_metrics_follow_the_app_when_its_lifespan_reopens_the_database(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'og.db'}",
        sandbox_db=str(tmp_path / "sb.db"),
        metrics_cache_s=0,
    )
    app = build_app(settings=settings, worker=False)
    for _ in range(2):  # the second lifespan opens a new database pool
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
                answer = await client.get("/metrics")
            assert answer.status_code == 200, answer.text
            assert "orderguard_database_up 1.0" in answer.text
