"""The webhook inbox's counters on PostgreSQL come from a ledger a trigger keeps (migration
15), not from counting the inbox on every scrape: whatever the inbox goes through (new
events, duplicates, failures, retries, processing) and however many scrapes fold the
ledger at once, the counters equal what counting the inbox says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from orderguard.storage.connect import connect
from orderguard.storage.ports import WebhookRecord
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(n: int, provider: str) -> WebhookRecord:
    return WebhookRecord(
        id=f"whk_{provider}_{n}",
        provider=provider,
        event_id=f"evt_{n}",
        type="payment_intent.succeeded",
        headers={"stripe-signature": "t=1"},
        body=b'{"id": "evt"}',
        received_at=NOW + timedelta(seconds=n),
    )


async def test_counters_equal_the_inbox_through_concurrent_writes_and_folds(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    try:

        async def inbox(n: int, provider: str) -> None:
            async with storage() as uow:
                await uow.webhooks.record(_event(n, provider))
                await uow.commit()
            async with storage() as uow:  # the same event again: stored once
                await uow.webhooks.record(_event(n, provider))
                await uow.commit()
            async with storage() as uow:
                record_id = f"whk_{provider}_{n}"
                if n % 3:
                    await uow.webhooks.failed(record_id, error="boom", retry_at=NOW)
                if n % 3 != 1:
                    await uow.webhooks.processed(record_id, at=NOW, order_id=None)
                await uow.commit()

        async def scrapes() -> None:
            for _ in range(10):
                await storage.stats.read(now=NOW, watched=frozenset(), shortest_wait=timedelta(0))

        await asyncio.gather(
            *(inbox(n, provider) for n in range(30) for provider in ("stripe", "alipay")),
            scrapes(),
            scrapes(),
        )
        stats = await storage.stats.read(now=NOW, watched=frozenset(), shortest_wait=timedelta(0))
    finally:
        await storage.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT provider, COUNT(*), COUNT(processed_at), SUM(attempts), "
            "COUNT(*) FILTER (WHERE processed_at IS NULL AND last_error IS NOT NULL) "
            "FROM webhook_events GROUP BY provider"
        ).fetchall()
        ledger_rows = conn.execute("SELECT COUNT(*) FROM webhook_tallies").fetchone()
    assert len(rows) == 2
    for provider, received, processed, attempts, failing in rows:
        totals = stats.webhooks[str(provider)]
        assert totals.received == received == 30
        assert totals.processed == processed == 20
        assert totals.failures == int(attempts) - int(processed) == 20
        assert totals.failing == failing == 10
    # the last scrape folded the ledger to a row per provider
    assert ledger_rows == (2,)


async def test_a_read_only_database_still_answers_with_the_ledger_unfolded(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    try:
        for n in range(3):
            async with storage() as uow:
                await uow.webhooks.record(_event(n, "stripe"))
                await uow.commit()
    finally:
        await storage.close()
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    storage = SqlStorage(await connect(pg_url, pool_size=2))  # like a standby: read-only
    try:
        stats = await storage.stats.read(now=NOW, watched=frozenset(), shortest_wait=timedelta(0))
    finally:
        await storage.close()
    assert stats.webhooks["stripe"].received == 3
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_tallies").fetchone() == (3,)
