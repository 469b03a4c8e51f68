"""Each hot query uses the index made for it (migration 15), on a generated database of
20,000 orders ANALYZEd as autovacuum would: the statements are the ones orderguard's own
code sends (recorded while it runs, ``bench/_plans.py``), planned by PostgreSQL with its
default settings. None of them reads a whole table that only grows."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from orderguard.storage import ops_stats
from tests.conftest import _admin, _pg_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import datagen
import growth
from _plans import Recorder, explain

ORDERS = 20_000
#: Tables that grow with every order: no hot query may read one whole.
GROWING = ("orders", "order_lines", "payment_attempts", "timeline", "outbox",
           "outbox_deliveries", "outbox_attempts", "webhook_events", "refunds")  # fmt: skip
#: The index each operation must use (at least once among its statements).
EXPECTED = {
    "janitor claim": {"orders_janitor_due"},
    "relay claim": {"outbox_deliveries_pending_order"},
    "webhook inbox claim": {"webhook_events_pending"},
    "console stuck queue": {"orders_changed"},
    "console search: email": {"orders_email", "orders_merchant_reference_key", "orders_pkey",
                              "payment_attempts_provider_ref"},
    "console search: reference": {"orders_merchant_reference_key"},
    "console search: provider ref": {"payment_attempts_provider_ref"},
    "orders list --state paid --since 7d": {"orders_newest"},
    "/metrics database gauges": {"orders_janitor_due", "webhook_events_pending",
                                 "outbox_deliveries_dead"},
}  # fmt: skip
#: Operations that read every order by design (reconcile exports them all).
WHOLE = {"reconcile: export orders"}


@pytest.fixture(scope="module")
def generated(pg_template: str) -> Iterator[str]:
    name = f"og_test_growth_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _pg_url(name)
    try:
        datagen.generate(url, ORDERS, now=datetime.now(UTC), seed=11, log=lambda _: None)
        yield url
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def plans(generated: str) -> dict[str, list[tuple[str, str]]]:
    """Every operation's statements and their plans (EXPLAIN, not run)."""
    saved = ops_stats.ESTIMATE_ABOVE
    ops_stats.ESTIMATE_ABOVE = ORDERS // 2  # the gauges as on a large database

    async def record() -> dict[str, list[tuple[str, str]]]:
        ops = await growth._operations(generated)
        close = ops.pop("_close")
        found = {}
        try:
            for label, op in ops.items():
                recorder = Recorder()
                async with recorder.active():
                    await op()
                found[label] = [
                    (s.sql, await explain(generated, s, analyze=False))
                    for s in recorder.worth_planning()
                ]
        finally:
            await close()
        return found

    try:
        return asyncio.run(record())
    finally:
        ops_stats.ESTIMATE_ABOVE = saved


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_each_hot_operation_uses_its_index(
    plans: dict[str, list[tuple[str, str]]], label: str
) -> None:
    used = {name for _, plan in plans[label] for name in re.findall(r" using (\w+)", plan)}
    used |= {name for _, plan in plans[label] for name in re.findall(r"Index Scan on (\w+)", plan)}
    missing = EXPECTED[label] - used
    assert not missing, f"{label} does not use {missing}:\n" + _show(plans[label])


def test_no_hot_operation_reads_a_growing_table_whole(
    plans: dict[str, list[tuple[str, str]]],
) -> None:
    assert set(EXPECTED) <= set(plans)
    scans = {
        (label, sql): table
        for label, statements in plans.items()
        if label not in WHOLE
        for sql, plan in statements
        for table in re.findall(r"Seq Scan on (\w+)", plan)
        if table in GROWING
    }
    assert scans == {}


def test_the_tally_and_the_estimates_match_the_counts(generated: str) -> None:
    with psycopg.connect(generated) as conn:
        exact = dict(conn.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall())

    async def read() -> dict[str, int]:
        from orderguard.storage.connect import connect

        db = await connect(generated, pool_size=1)
        try:
            return await ops_stats.SqlOpsStats(db).orders_by_state()
        finally:
            await db.close()

    saved = ops_stats.ESTIMATE_ABOVE
    ops_stats.ESTIMATE_ABOVE = ORDERS // 2
    try:
        counted = asyncio.run(read())
    finally:
        ops_stats.ESTIMATE_ABOVE = saved
    for state, n in exact.items():
        if state in ("paid", "cancelled", "refunded"):  # estimated from the statistics
            assert abs(counted[state] - n) <= max(0.05 * n, 20), (state, counted[state], n)
        else:  # open: exact
            assert counted[state] == n, (state, counted[state], n)


def _show(statements: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"{sql}\n{plan}" for sql, plan in statements)
