"""``/metrics`` on real outbox and reconciliation data, on SQLite and PostgreSQL: the
exceptions an applied reconciliation recorded per category; the lag a failing merchant
endpoint builds and the dead letters the relay leaves there; no lag without a sink."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orderguard.bootstrap import build_app, wire
from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.config import Settings
from orderguard.outbox.configured import build_relay
from orderguard.reconcile.apply import apply
from orderguard.reconcile.engine import EngineOptions
from orderguard.reconcile.run import Request, reconcile
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import LOCAL_URL
from tests.integration.conftest import memory_providers
from tests.outbox_kit import (  # noqa: F401 (sql is a fixture)
    add_endpoint,
    committed_ids,
    live,
    receiver,
    settings,
    sql_storage,
)
from tests.reconcile_support import seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(sql: SqlStorage, config: Settings) -> Samples:
    """``/metrics`` of an app wired to ``sql``, parsed."""
    app = build_app(container=wire(config, sql, memory_providers()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


async def apply_report(sql: SqlStorage, report: Path, work: Path) -> None:
    """``orderguard reconcile --apply`` of ``report`` (through its API)."""
    work.mkdir()
    request = Request([report], options=EngineOptions(provider="memory"), formats=FORMATS)
    engine, outcome = await reconcile(sql, request, work)
    try:
        await apply(sql, engine, outcome)
    finally:
        engine.close()


async def test_an_applied_reconciliation_is_counted_per_category(
    sql: SqlStorage, tmp_path: Path
) -> None:
    config = settings(metrics_cache_s="0")
    before = named(await scrape(sql, config), "orderguard_reconciliation_exceptions")
    await seed(sql, "pi_{}".format, provider="memory")
    report = tmp_path / "stripe.csv"
    shutil.copy(FIXTURES / "stripe_itemized.csv", report)
    await apply_report(sql, report, tmp_path / "work")

    after = named(await scrape(sql, config), "orderguard_reconciliation_exceptions")

    assert before == {}, "nothing recorded yet: no category"
    assert after == {
        (("category", "amount_mismatch"),): 1,
        (("category", "currency_mismatch"),): 1,
        (("category", "duplicate"),): 1,
        (("category", "missing_at_provider"),): 1,
        (("category", "missing_in_orders"),): 1,
    }


async def test_the_open_exceptions_gauge_drops_when_a_later_run_explains_one(
    sql: SqlStorage, tmp_path: Path
) -> None:
    config = settings(metrics_cache_s="0")
    await seed(sql, "pi_{}".format, provider="memory")
    report = tmp_path / "stripe.csv"
    shutil.copy(FIXTURES / "stripe_itemized.csv", report)
    header = report.read_text().splitlines()[0]
    later = tmp_path / "next-day.csv"
    later.write_text(
        f"{header}\npo_2,,txn_E,2026-11-03 09:00:00,,eur,40.00,0.00,40.00,charge,,ch_E,pi_E,"
        "ch_E,ord_E\n"
    )
    opened = []
    for n, path in enumerate((report, later)):
        await apply_report(sql, path, tmp_path / f"work{n}")
        samples = await scrape(sql, config)
        opened.append(named(samples, "orderguard_reconciliation_exceptions_open"))

    missing = (("category", "missing_at_provider"),)
    assert (opened[0][missing], opened[1][missing]) == (1, 0)
    assert opened[1][(("category", "amount_mismatch"),)] == 1
    recorded = named(samples, "orderguard_reconciliation_exceptions")
    assert recorded[missing] == 1, "the all-time count stays"


async def test_a_failing_endpoint_shows_as_lag_then_as_dead_letters(sql: SqlStorage) -> None:
    config = settings(metrics_cache_s="0", outbox_max_attempts="2")
    order = await live(sql, at=datetime.now(UTC) - timedelta(minutes=2))
    events = await committed_ids(sql, order.id)
    async with receiver(fail_first=10_000) as hook:
        endpoint, _ = await add_endpoint(sql, hook.url)
        waiting = await scrape(sql, config)
        support = OutboxSupport(sql)
        relay = build_relay(config, sql)
        deadline = time.monotonic() + 30
        try:
            while len(await support.dead_letters(sink=endpoint.sink)) < len(events):
                assert time.monotonic() < deadline, "the relay did not give up in time"
                await relay.run_once(owner="metrics-test")
                await asyncio.sleep(0.02)
        finally:
            await relay.aclose()
        given_up = await scrape(sql, config)
    sink = (("sink", endpoint.sink),)

    assert waiting[("orderguard_outbox_lag_seconds", ())] > 0
    assert waiting[("orderguard_outbox_dead_letters", sink)] == 0
    assert hook.calls == 2 * len(events)
    assert given_up[("orderguard_outbox_dead_letters", sink)] == len(events)
    assert given_up[("orderguard_outbox_lag_seconds", ())] == 0, "dead letters wait for no one"


async def test_without_a_sink_nothing_lags(sql: SqlStorage) -> None:
    await live(sql, at=datetime.now(UTC) - timedelta(minutes=2))

    scraped = await scrape(sql, settings(metrics_cache_s="0"))

    assert scraped[("orderguard_outbox_lag_seconds", ())] == 0
    assert named(scraped, "orderguard_outbox_dead_letters") == {}
