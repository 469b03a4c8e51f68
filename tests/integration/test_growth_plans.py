"""Each hot query uses the index made for it (migration 15), on a generated database of
20,000 orders ANALYZEd as autovacuum would: the statements are the ones orderguard's own
code sends (recorded while it runs, ``bench/_plans.py``), planned by PostgreSQL with its
default settings. None of them reads a whole table that only grows. The janitor's claim,
on orders in motion added to them, reads its index in order and stops at its limit."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
#: The janitor's claim: orders in motion that are due, not yet due, and finished orders
#: added to the generated ones. With these (all due orders in the order of the index:
#: as on the generated 10 M), the claim as written before read every order in motion by
#: ``orders_changed`` and sorted them.
DUE, NOT_DUE, FINISHED = 1_200, 1_500, 200_000
CLAIM_LIMIT = 50


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


_ADD_ORDERS = """
INSERT INTO orders (id, merchant_reference, state, currency, amount_total, customer_email,
    customer_name, ship_line1, ship_city, ship_postal_code, ship_country, locale,
    status_token, version, created_at, updated_at, payment_method, checks,
    last_checked_at, next_check_at)
SELECT %(tag)s || g, %(tag)s || g, %(state)s, 'EUR', 1000, 'x' || g || '@example.com', 'X',
    'Line 1', 'City', '10115', 'DE', 'de', %(tag)s || g, 1, %(at)s, %(at)s, 'pm_card_visa',
    1, %(checked)s, %(next)s
FROM generate_series(1, %(n)s) AS g
"""


@pytest.fixture(scope="module")
def crowded(pg_template: str) -> Iterator[str]:
    """The generated orders, plus :data:`FINISHED` paid orders and, in each state the
    janitor watches, :data:`DUE` orders due (their next check passed, or none set and
    the last check long ago) and :data:`NOT_DUE` whose next check is to come: ANALYZEd
    as autovacuum would."""
    name = f"og_test_claim_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _pg_url(name)
    now = datetime.now(UTC)
    try:
        datagen.generate(url, ORDERS, now=now, seed=12, log=lambda _: None)
        with psycopg.connect(url) as conn:
            add = lambda **kw: conn.execute(_ADD_ORDERS, kw)  # noqa: E731
            add(tag="fin_", state="paid", at=now - timedelta(days=30), checked=None, next=None,
                n=FINISHED)  # fmt: skip
            for state in ("payment_pending", "payment_unknown", "action_required"):
                hour = now - timedelta(hours=1)
                add(tag=f"due_{state}_", state=state, at=hour, checked=hour,
                    next=now - timedelta(minutes=5), n=DUE // 6)  # fmt: skip
                add(tag=f"old_{state}_", state=state, at=hour, checked=hour, next=None,
                    n=DUE // 6)  # fmt: skip
                add(tag=f"later_{state}_", state=state, at=hour, checked=now,
                    next=now + timedelta(hours=1), n=NOT_DUE // 3)  # fmt: skip
            conn.execute("ANALYZE orders")
        yield url
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_janitor_claim_reads_due_orders_in_order_and_stops_at_its_limit(
    crowded: str,
) -> None:
    """The plan reads ``orders_janitor_due`` in the order the claim wants, under a
    ``Limit``, and stops after the claimed rows: no ``Sort`` of every order in motion
    (what PostgreSQL chose on 10 M orders before), no bitmap over every due order."""

    async def claim() -> tuple[list[str], str]:
        from orderguard.domain.schedule import RecheckSchedule
        from orderguard.storage.connect import connect
        from orderguard.storage.unit_of_work import SqlStorage

        storage = SqlStorage(await connect(crowded, pool_size=1))
        schedule = RecheckSchedule()
        now = datetime.now(UTC)
        recorder = Recorder()
        try:
            async with recorder.active(), storage() as uow:  # rolled back
                claimed = await uow.leases.claim_due_orders(
                    schedule.watched, now=now, first_due_before=now - schedule.shortest_wait,
                    owner="test", until=now + timedelta(minutes=1), limit=CLAIM_LIMIT,
                )  # fmt: skip
        finally:
            await storage.close()
        [statement] = [s for s in recorder.statements if "lease_owner = :owner" in s.sql]
        return claimed, await explain(crowded, statement)

    claimed, plan = asyncio.run(claim())
    assert len(claimed) == CLAIM_LIMIT
    assert not [order_id for order_id in claimed if order_id.startswith("later_")]
    scans = re.findall(r"(\w+(?: \w+)*) on orders \w+ \(actual time=[\d.]+ rows=(\d+)", plan)
    read = [(kind, int(rows)) for kind, rows in scans if "orders_janitor_due" in kind]
    assert read and read[0][0].endswith("Index Scan using orders_janitor_due"), plan
    assert read[0][1] <= CLAIM_LIMIT, plan  # stopped at the limit
    assert "Limit" in plan and "Sort" not in plan and "Bitmap" not in plan, plan


def _show(statements: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"{sql}\n{plan}" for sql, plan in statements)
