"""Reconciliation reads the report's period and what its lines name, not every order (issue 20).

On PostgreSQL, with a year of paid orders outside the report's period: every category comes
out as a full read of the tables gives it (the engine fed :func:`export_orders`), a line
naming a year-old order and a refund today of another still find their orders, and the rows
read are the period's and the references' (the same however many orders lie outside), each
read by an index (EXPLAIN ANALYZE: no sequential scan, no row read and thrown away).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderguard.reconcile import categories as c
from orderguard.storage import reconciliation as sql
from orderguard.storage.ports import ATTEMPT_CSV_COLUMNS, ORDER_CSV_COLUMNS, LineRefs
from orderguard.storage.unit_of_work import SqlStorage
from tests.reconcile_support import PAID_AT, full_read, paid_order, scoped, seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"
#: A year before the report.
YEAR_AGO = PAID_AT - timedelta(days=365)
#: Lines added to the Stripe fixture: a late charge of a year-old order (by its payment
#: reference), a charge naming another year-old order only by its order id, and a refund
#: today of a third year-old order.
OLD_LINES = (
    "po_1Q,2026-11-04 00:00:00,txn_O1,2026-11-02 13:00:00,2026-11-04 00:00:00,eur,11.00,"
    "0.40,10.60,charge,Old 1,ch_O1,pi_OLD1,ch_O1,\n"
    "po_1Q,2026-11-04 00:00:00,txn_O3,2026-11-02 13:05:00,2026-11-04 00:00:00,eur,33.00,"
    "0.90,32.10,charge,Old 3,ch_O3,,ch_O3,ord_OLD3\n"
    "po_1Q,2026-11-04 00:00:00,txn_O2,2026-11-03 09:45:00,2026-11-04 00:00:00,eur,-22.00,"
    "0.00,-22.00,refund,Refund old 2,ch_O2,pi_OLD2,re_O2,\n"
)


@pytest.fixture
def storage(pg_storage: SqlStorage) -> SqlStorage:
    """These tests' storage is PostgreSQL's alone."""
    return pg_storage


async def add_history(storage: SqlStorage, first: int, count: int) -> None:
    """``count`` orders paid between a week and a year before the report (each a day apart
    at most), one of them with G's amount (an amount match it must not disturb)."""
    async with storage() as uow:
        for i in range(first, first + count):
            at = PAID_AT - timedelta(days=7 + i % 358, minutes=i)
            amount = 1550 if i == first else 700 + i
            await uow.orders.add(paid_order(f"H{i}", provider_ref=f"pi_H{i}", amount=amount, at=at))
        await uow.commit()


async def scenario(storage: SqlStorage, tmp_path: Path) -> Path:
    """The fixture's orders A-G, three year-old orders the report names, a paid order two
    days before the period (inside the amount-matching window), and the report."""
    await seed(storage, lambda x: f"pi_{x}")
    async with storage() as uow:
        for letter, amount in (("OLD1", 1100), ("OLD2", 2200), ("OLD3", 3300)):
            await uow.orders.add(
                paid_order(letter, provider_ref=f"pi_{letter}", amount=amount, at=YEAR_AGO)
            )
        near = PAID_AT - timedelta(days=2)
        await uow.orders.add(paid_order("NEAR", provider_ref="pi_NEAR", amount=4321, at=near))
        await uow.commit()
    report = tmp_path / "report.csv"
    report.write_text((FIXTURES / "stripe_itemized.csv").read_text() + OLD_LINES)
    return report


async def test_the_period_and_the_references_give_what_a_full_read_gives(
    storage: SqlStorage, tmp_path: Path
) -> None:
    report = await scenario(storage, tmp_path)
    await add_history(storage, 0, 400)
    found, outcome = await scoped(storage, report, tmp_path / "scoped")
    assert found == await full_read(storage, report, tmp_path / "full")
    by_line = {r.line: r for r in found if r.line is not None}
    late, by_order_id, refund = by_line[13], by_line[14], by_line[15]
    assert (late.category, late.order_id, late.via) == (c.MATCHED, "ord_OLD1", "reference")
    assert (by_order_id.category, by_order_id.order_id) == (c.MATCHED, "ord_OLD3")
    assert (refund.category, refund.order_id, refund.amount) == (c.REFUND, "ord_OLD2", -2200)
    # G (15.50) still matches by amount: the year-old order of the same amount is not near.
    assert by_line[8].order_id == "ord_G"
    # Only E, paid in the period, is missing: NEAR was paid before it, the history long before.
    missing = [r.order_id for r in found if r.category == c.MISSING_AT_PROVIDER]
    assert missing == ["ord_E"]
    assert outcome.counts[c.MATCHED] == 6


async def test_the_rows_read_do_not_grow_with_the_orders_outside_the_period(
    storage: SqlStorage, tmp_path: Path
) -> None:
    report = await scenario(storage, tmp_path)
    await add_history(storage, 0, 100)
    _, small = await scoped(storage, report, tmp_path / "small")
    await add_history(storage, 100, 1500)
    found, large = await scoped(storage, report, tmp_path / "large")
    # Attempts: A-G (paid in the period) and OLD1 and OLD2 (named by a line's reference),
    # then, for the lines that name nothing (G's, X's), G again (of G's amount, paid near
    # them; NEAR is of another amount, the history's order of G's amount too old) and none
    # of X's amount. Orders: theirs, and OLD3 (named by a line's order id).
    expected = {"orders": 11, "attempts": 10, "candidates": True}
    assert small.extra["read"] == large.extra["read"] == expected
    assert found == await full_read(storage, report, tmp_path / "full")


async def plan(
    storage: SqlStorage,
    statement: str,
    params: dict[str, Any],
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with storage.reader() as uow:
        conn = uow.reconciliations._conn  # type: ignore[attr-defined]
        for name, value in (settings or {}).items():
            await conn.fetchone(
                "SELECT set_config(:name, :value, true)", {"name": name, "value": value}
            )
        row = await conn.fetchone(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
    assert row is not None
    document = next(iter(row.values()))
    return dict(document[0]["Plan"])


def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a plan that read a table or an index."""
    found = [node] if "Relation Name" in node or "Index Name" in node else []
    for child in node.get("Plans", []):
        found += scans(child)
    return found


def rows_read(node: dict[str, Any]) -> int:
    """Rows a plan's scans produced or read and threw away."""
    return sum(
        int(s["Actual Rows"]) * int(s["Actual Loops"])
        + int(s.get("Rows Removed by Filter", 0))
        + int(s.get("Rows Removed by Index Recheck", 0))
        for s in scans(node)
    )


async def test_every_lookup_reads_by_index_only_the_rows_it_returns(
    storage: SqlStorage, tmp_path: Path
) -> None:
    await scenario(storage, tmp_path)
    await add_history(storage, 0, 2000)
    async with storage() as uow:
        await uow.reconciliations._conn.execute("ANALYZE")  # type: ignore[attr-defined]
        await uow.commit()
    refs, refs_params = sql.in_list(["pi_OLD1", "pi_OLD2", "pi_A", "ord_OLD3", "nothing"])
    ids, ids_params = sql.in_list(["ord_OLD1", "ord_A", "ord_H7"])
    start, end = PAID_AT - timedelta(days=4), PAID_AT + timedelta(days=5)
    statements = {
        # A-G and NEAR paid in these days; the 2,000 others before.
        "period": (
            sql.PAID_BETWEEN.format(after="", provider=" AND provider = :provider"),
            {"start": start, "end": end, "limit": 1000, "provider": "stripe"},
            8,
        ),
        "references": (sql.BY_REFS.format(refs=refs), refs_params, 3),
        "orders": (sql.BY_IDS.format(refs=ids), ids_params, 3),
        "order references": (sql.BY_REFERENCES.format(refs=refs), refs_params, 1),
    }
    for name, (statement, params, returned) in statements.items():
        tree = await plan(storage, statement, params)
        kinds = {s["Node Type"] for s in scans(tree)}
        assert "Seq Scan" not in kinds, (name, kinds)
        assert int(tree["Actual Rows"]) == returned, name
        assert rows_read(tree) <= 2 * returned, (name, rows_read(tree))
    window = {"window_from": start, "window_to": end}
    period, rest = sql.scope_csv(provider=True, period=True, window=True)
    params = {"start": start, "end": end, "provider": "stripe", **window}
    lines = LineRefs(
        refs=json.dumps(["pi_OLD1", "pi_OLD2", "pi_A", "pi_B", None]),
        order_refs=json.dumps([None, None, None, "ord_A", "ord_OLD3"]),
        charges=json.dumps([False, False, True, True, True]),
    )
    streamed = {
        # A-G and NEAR paid in the days, and their orders: each read once by the index,
        # once from the table, and its order's key looked up once more.
        "the period": (period, params, {}, 2 * 8, 3 * 2 * 8),
        # OLD1 and OLD2 by reference and their orders, and OLD3 (the order reference of the
        # line whose reference names nothing); the orders no line claims (C-G, NEAR, OLD2)
        # have no other payment. The period's payments are read again (to know what the
        # references found), each once per part.
        "the rest": (rest, params, sql.line_settings(lines), 2 * 2 + 1, 3 * (2 * 10 + 1)),
        # G's amount: G once (the history's order of that amount is far older), and its
        # order. Each of the days' eight payments is read (the index, then the table) and
        # its order's amount looked up; G's payment and order once more.
        "candidates": (
            sql.candidates_csv(provider=True),
            {"amounts": [1550], **params},
            {},
            2,
            3 * 8 + 2 * 2,
        ),
    }
    for name, (statement, values, settings, returned, bound) in streamed.items():
        tree = await plan(storage, statement, values, settings)
        kinds = {s["Node Type"] for s in scans(tree)}
        assert "Seq Scan" not in kinds, (name, kinds)
        assert int(tree["Actual Rows"]) == returned, name
        assert rows_read(tree) <= bound, (name, rows_read(tree))


class CountingReaders:
    """The storage, counting the read-only units of work opened through it."""

    def __init__(self, storage: SqlStorage) -> None:
        self.storage = storage
        self.readers = 0

    def __call__(self) -> Any:
        return self.storage()

    def reader(self) -> Any:
        self.readers += 1
        return self.storage.reader()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


async def test_the_period_is_read_in_statements_that_do_not_grow_with_its_payments(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """3,000 payments in the period (more than a page of lookups, 500, many times over) are
    read in one unit of work, by one statement streamed to the files (a second one for the
    loose lines' candidates), and give what a full read gives."""
    report = await scenario(storage, tmp_path)
    async with storage() as uow:
        for i in range(3000):
            at = PAID_AT + timedelta(seconds=20 + 10 * i)
            await uow.orders.add(paid_order(f"P{i}", provider_ref=f"pi_P{i}", amount=900, at=at))
        await uow.commit()
    counting = CountingReaders(storage)
    found, outcome = await scoped(counting, report, tmp_path / "scoped")  # type: ignore[arg-type]
    assert counting.readers == 2  # the scope, then the loose lines' candidates
    # A-G and the 3,000 in the period, OLD1 and OLD2 by reference; OLD3 by order id; G
    # again, the one candidate of G's loose line (the 3,000 are of another amount).
    assert outcome.extra["read"] == {"orders": 3011, "attempts": 3010, "candidates": True}
    assert found == await full_read(storage, report, tmp_path / "full")


async def test_the_streamed_files_hold_what_the_lookups_read(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """Text with commas, quotes, backslashes, braces and a line break comes through the
    stream as the lookups read it, and finds its rows when the statement is sent it (the
    lines' keys go as JSON, in settings); each attempt and order once, though named twice."""
    awkward = 'Q,"x"\ny\\{z}, NULL'
    async with storage() as uow:
        q = paid_order(awkward, provider_ref='pi_Q,"1"\\}', amount=1234, at=YEAR_AGO)
        await uow.orders.add(q)
        await uow.orders.add(paid_order("R", provider_ref="pi_R", amount=99, at=YEAR_AGO))
        await uow.commit()
    orders, attempts = tmp_path / "orders.csv", tmp_path / "attempts.csv"
    refs = sorted({'pi_Q,"1"\\}', "pi_R", "nothing", "NULL"})
    # The lines naming nothing found: their order references are looked up.
    lines = LineRefs(
        refs=json.dumps([*refs, "nothing", None]),
        order_refs=json.dumps([None] * len(refs) + [f"ord_{awkward}", "M-R"]),
        charges=json.dumps([True] * (len(refs) + 2)),
    )
    async with storage.reader() as uow:
        written = await uow.reconciliations.copy_scope(
            orders,
            attempts,
            paid_from=PAID_AT - timedelta(days=1),
            paid_to=PAID_AT + timedelta(days=1),
            provider="stripe",
            lines=lines,
        )
        by_refs = await uow.reconciliations.attempts_by_refs(refs)
        by_ids = await uow.reconciliations.orders_by_ids([a.order_id for a in by_refs])
    assert written == (2, 2)
    with attempts.open(newline="") as source:
        rows = list(csv.reader(source))
    assert rows[0] == list(ATTEMPT_CSV_COLUMNS)
    assert sorted(r[:4] for r in rows[1:]) == sorted(
        [a.order_id, a.provider, a.provider_ref or "", a.state] for a in by_refs
    )
    assert sorted(datetime.fromisoformat(r[4]) for r in rows[1:]) == sorted(
        a.updated_at for a in by_refs
    )
    with orders.open(newline="") as source:
        rows = list(csv.reader(source))
    assert rows[0] == list(ORDER_CSV_COLUMNS)
    assert sorted(r[:5] for r in rows[1:]) == sorted(
        [o.id, o.merchant_reference or "", o.state, o.currency, str(o.amount)] for o in by_ids
    )
    assert sorted(datetime.fromisoformat(r[5]) for r in rows[1:]) == sorted(
        o.created_at for o in by_ids
    )
