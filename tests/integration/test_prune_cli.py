"""``orderguard prune [--dry-run]`` on SQLite and PostgreSQL: what it says it removes (or
would), that the dry run changes nothing, and that a retention switched off keeps rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result

from orderguard.cli import main
from orderguard.domain.delivery import DeliveryAttempt, Outcome
from orderguard.storage.ports import WebhookRecord
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.outbox_kit import live

LONG_AGO = datetime.now(UTC) - timedelta(days=120)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return found


def prune(url: str, *args: str, **env: str) -> Result:
    variables = {"ORDERGUARD_DATABASE_URL": url, "ORDERGUARD_CONFIG": None, **env}
    return CliRunner().invoke(main, ["prune", *args], env=variables, catch_exceptions=False)


async def _old_rows(storage: SqlStorage) -> None:
    """Two orders whose event was delivered 120 days ago, one still pending, and webhooks
    processed 120 days ago (two) and an hour ago (one)."""
    for _ in range(3):
        await live(storage, life=(), at=LONG_AGO)
    async with storage() as uow:
        now = datetime.now(UTC)
        await uow.outbox.enqueue("s", types=None, since=LONG_AGO, now=now, batch=100)
        first, second, _ = await uow.outbox.claim("s", owner="r", now=now, until=now, limit=9)
        for d in (first, second):
            sent = DeliveryAttempt(d.event.id, "s", LONG_AGO, Outcome.DELIVERED, None, "r", 1)
            await uow.outbox.delivered(d, attempt=sent)
        for n, at in enumerate((LONG_AGO, LONG_AGO, now - timedelta(hours=1))):
            record = WebhookRecord(f"whk_{n}", "stripe", f"evt_{n}", "t", {}, b"{}", at)
            assert await uow.webhooks.record(record)
            await uow.webhooks.processed(record.id, at=at, order_id=None)
        await uow.commit()


def with_old_rows(url: str) -> None:
    async def fill() -> None:
        storage = await open_storage(url)
        try:
            await _old_rows(storage)
        finally:
            await storage.close()

    asyncio.run(fill())


def test_a_dry_run_says_what_prune_then_removes(url: str) -> None:
    with_old_rows(url)
    expected = [
        "0 idempotency records older than 1 day, 0:00:00",
        "2 outbox deliveries and 2 outbox events delivered more than 30 days ago",
        "the bodies of 2 webhook events processed more than 90 days ago (their event ids are "
        "kept to refuse duplicates)",
    ]
    for _ in range(2):  # the dry run changes nothing
        dry = prune(url, "--dry-run")
        assert dry.exit_code == 0, dry.output
        lines = dry.stdout.splitlines()
        assert lines == [f"would prune {line}" for line in expected] + [
            "dry run: nothing was changed"
        ]
    done = prune(url)
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [f"pruned {line}" for line in expected]
    again = prune(url).stdout.splitlines()
    assert (
        again[1] == "pruned 0 outbox deliveries and 0 outbox events delivered more than 30 days ago"
    )
    assert again[2].startswith("pruned the bodies of 0 webhook events")


def test_a_retention_switched_off_keeps_its_rows(url: str) -> None:
    with_old_rows(url)
    kept = prune(
        url,
        ORDERGUARD_OUTBOX_RETENTION_DAYS="0",
        ORDERGUARD_WEBHOOK_BODY_RETENTION_DAYS="0",
    )
    assert kept.exit_code == 0, kept.output
    assert kept.stdout.splitlines()[1:] == [
        "outbox retention is off (outbox_retention_days = 0): nothing deleted",
        "webhook retention is off (webhook_body_retention_days = 0): bodies kept",
    ]
    dry = prune(url, "--dry-run").stdout.splitlines()
    assert dry[1].startswith("would prune 2 outbox deliveries and 2 outbox events")
    assert dry[2].startswith("would prune the bodies of 2 webhook events")


def test_a_negative_retention_stops_prune_before_it_touches_anything(url: str) -> None:
    with_old_rows(url)
    refused = prune(url, ORDERGUARD_OUTBOX_RETENTION_DAYS="-5")
    assert refused.exit_code == 2
    assert "outbox_retention_days must be 0 (keep forever) or 1 to 36500 days" in refused.output
    dry = prune(url, "--dry-run").stdout.splitlines()
    assert dry[1].startswith("would prune 2 outbox deliveries")
