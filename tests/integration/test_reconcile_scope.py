"""Reconciliation reads what a report needs, and no more, and finds what a full read finds
(issue 20).

On PostgreSQL a run reads the period's payments, what its lines name and, for the orders no
charge line claims, their other payments near the period (the first one decides whether an
order no line confirms is missing); the payments a loose charge line (one that names
nothing) can be matched to by amount are read apart, only when there is one. Generated
shops (orders paid before, in and after a report's day, some twice, some refunded, some
through another provider, some not paid, some sharing a reference, some placed minutes or
weeks before they were paid) and reports (charges by
reference, by order id, by the payment's reference as order reference, by nothing,
refunds, duplicates, unreadable lines) are matched both ways: by the run, and
by the engine fed every order and attempt (:func:`export_orders`). Both must agree, line
by line and order by order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from orderguard.reconcile import categories as c
from orderguard.reconcile import run as reconcile_run
from orderguard.reconcile.outcome import EngineOptions
from orderguard.reconcile.run import Request, reconcile
from orderguard.storage.unit_of_work import SqlStorage
from tests.reconcile_support import FORMATS, full_read, paid_order, results, scoped

HEADER = (
    "automatic_payout_id,automatic_payout_effective_at,balance_transaction_id,created_utc,"
    "available_on_utc,currency,gross,fee,net,reporting_category,description,charge_id,"
    "payment_intent_id,source_id,payment_metadata[order_id]"
)
#: Each generated shop's report day; shops are 40 days apart, far beyond the 3-day window.
FIRST_DAY = datetime(2026, 1, 10, tzinfo=UTC)
#: Amounts that collide on purpose (amount matching must find a single candidate).
AMOUNTS = (1000, 1500, 2000)


@pytest.fixture
def storage(pg_storage: SqlStorage) -> SqlStorage:
    """These tests' storage is PostgreSQL's alone."""
    return pg_storage


@dataclass
class Shop:
    """One generated shop: its orders' payments in the database, its report's lines."""

    day: datetime
    lines: list[str] = field(default_factory=list)
    #: Orders a loose line can only be matched to if the run reads the window's payments.
    by_amount: list[str] = field(default_factory=list)

    def line(self, kind: str, at: datetime, amount: str, *, ref: str = "", order: str = "") -> None:
        n = len(self.lines)
        self.lines.append(
            f"po_1,2026-12-01 00:00:00,txn_{n},{at:%Y-%m-%d %H:%M:%S},2026-12-01 00:00:00,"
            f"eur,{amount},0.30,{amount},{kind},Line {n},ch_{n},{ref},ch_{n},{order}"
        )

    def write(self, path: Path) -> Path:
        path.write_text("\n".join([HEADER, *self.lines]) + "\n")
        return path


async def generate(storage: SqlStorage, url: str, shop_no: int, *, loose: bool) -> Shop:
    """Orders paid up to a week either side of the shop's day, and the day's report; with
    ``loose``, charge lines that name nothing (matched by amount, or not at all)."""
    rng = random.Random(shop_no)
    day = FIRST_DAY + timedelta(days=40 * shop_no)
    shop = Shop(day)
    sql: list[tuple[str, Any]] = []

    def on_day() -> datetime:
        return day + timedelta(seconds=rng.randrange(3600, 23 * 3600))

    async with storage() as uow:
        for i in range(60):
            name = f"S{shop_no}N{i}"
            amount = rng.choice(AMOUNTS)
            paid = day + timedelta(seconds=rng.randrange(-7 * 86400, 8 * 86400))
            provider = "adyen" if rng.random() < 0.1 else "stripe"
            # A few share the previous order's reference (the engine keeps one order a line).
            ref = f"pi_S{shop_no}N{i - 1}" if i and rng.random() < 0.05 else f"pi_{name}"
            order = paid_order(name, provider_ref=ref, amount=amount, at=paid)
            order.attempts[0].provider = provider
            await uow.orders.add(order)
            placed = rng.random()
            if placed < 0.2:  # placed long before it was paid (a pay-by-link order, say)
                sql.append((PLACED_EARLIER, (timedelta(days=rng.randrange(1, 60)), f"ord_{name}")))
            elif placed < 0.4:  # placed shortly before
                sql.append(
                    (PLACED_EARLIER, (timedelta(minutes=rng.randrange(1, 90)), f"ord_{name}"))
                )
            fate = rng.random()
            if fate < 0.2:  # charged twice: a second payment up to four days apart
                again = paid + timedelta(seconds=rng.randrange(-4 * 86400, 4 * 86400))
                sql.append((SECOND_ATTEMPT, second(f"{name}b", name, again)))
            elif fate < 0.3:  # refunded since
                later = paid + timedelta(seconds=rng.randrange(0, 3 * 86400))
                sql.append((REFUNDED, (later, f"pay_{name}")))
            elif fate < 0.35:  # declined: never paid
                sql.append((DECLINED, (f"pay_{name}",)))
            if day <= paid < day + timedelta(days=1):
                pick = rng.random()
                money = f"{amount / 100:.2f}" if rng.random() < 0.9 else "99.99"
                if pick < 0.6:
                    shop.line("charge", on_day(), money, ref=ref)
                elif pick < 0.65:
                    shop.line("charge", on_day(), money, order=f"ord_{name}")
                elif pick < 0.7:  # the payment's reference as the order reference (wallets)
                    shop.line("charge", on_day(), money, order=ref)
                elif pick < 0.8 and loose:
                    shop.line("charge", on_day(), money)
                # else: not in the report (missing at the provider)
            if rng.random() < 0.05:
                shop.line("refund", on_day(), f"-{amount / 100:.2f}", ref=ref)
            if rng.random() < 0.05:
                shop.line("charge", on_day(), "1o.00", ref=ref)  # unreadable amount
        # Set cases, whatever the draw. F1: paid two days before the day and again on it,
        # neither named: first paid before the period, so not missing. F2: refunded on the
        # day (the refund names it) and paid again the day before: not missing either. F3:
        # paid on the day, named by nothing: missing. F4, F5: the same unique amount, paid
        # two days before and ten days before; a loose line of that amount matches F4. F6:
        # paid on the day, charged twice in the report (a duplicate).
        mid = day + timedelta(hours=12)
        for name, amount, paid in (
            ("F1", 777, mid - timedelta(days=2)),
            ("F2", 778, mid - timedelta(days=30)),
            ("F3", 779, mid),
            ("F4", 881, mid - timedelta(days=2)),
            ("F5", 881, mid - timedelta(days=10)),
            ("F6", 782, mid),
        ):
            ref = f"pi_S{shop_no}{name}"
            await uow.orders.add(paid_order(ref[3:], provider_ref=ref, amount=amount, at=paid))
        await uow.commit()
    f = f"S{shop_no}F"
    sql += [
        (SECOND_ATTEMPT, second(f"{f}1b", f"{f}1", mid)),
        (REFUNDED, (mid, f"pay_{f}2")),
        (SECOND_ATTEMPT, second(f"{f}2b", f"{f}2", mid - timedelta(days=1))),
    ]
    shop.line("refund", mid + timedelta(hours=1), "-7.78", ref=f"pi_{f}2")
    if loose:
        shop.line("charge", mid, "8.81")
        shop.line("charge", mid + timedelta(minutes=5), "12.34", ref="pi_unknown")
        shop.by_amount.append(f"ord_{f}4")
    for minutes in (9, 10):
        shop.line("charge", mid + timedelta(minutes=minutes), "7.82", ref=f"pi_{f}6")
    with psycopg.connect(url, autocommit=True) as conn:
        # Stored as a shop's history left them (a decline after a charge is not a move the
        # state machine makes: its triggers are off for this connection's writes).
        conn.execute("SET session_replication_role = replica")
        for statement, params in sql:
            conn.execute(statement, params)
    rng.shuffle(shop.lines)
    return shop


#: A second successful attempt of the order of ``pay_<x>``, paid at a given time.
SECOND_ATTEMPT = (
    "INSERT INTO payment_attempts (id, order_id, seq, provider, method, state, amount, "
    "currency, idempotency_key, provider_ref, created_at, updated_at) "
    "SELECT %(id)s, order_id, 2, 'stripe', method, 'succeeded', amount, currency, "
    "'key-' || %(id)s, %(ref)s, created_at, %(at)s FROM payment_attempts WHERE id = %(of)s"
)


def second(name: str, of: str, at: datetime) -> dict[str, object]:
    """Attempt ``pay_<name>`` (reference ``pi_<name>``) of ``pay_<of>``'s order, paid at ``at``."""
    return {"id": f"pay_{name}", "ref": f"pi_{name}", "at": at, "of": f"pay_{of}"}


#: The order placed this long before it was (first) paid.
PLACED_EARLIER = "UPDATE orders SET created_at = created_at - %s WHERE id = %s"
REFUNDED = (
    "WITH a AS (UPDATE payment_attempts SET state = 'refunded', updated_at = %s "
    "WHERE id = %s RETURNING order_id) "
    "UPDATE orders SET state = 'refunded' WHERE id IN (SELECT order_id FROM a)"
)
DECLINED = (
    "WITH a AS (UPDATE payment_attempts SET state = 'failed' WHERE id = %s "
    "RETURNING order_id) "
    "UPDATE orders SET state = 'payment_failed' WHERE id IN (SELECT order_id FROM a)"
)


async def test_generated_shops_match_as_against_every_order(
    storage: SqlStorage, pg_url: str, tmp_path: Path
) -> None:
    shops = [await generate(storage, pg_url, n, loose=n % 2 == 1) for n in range(6)]
    seen: dict[str, int] = dict.fromkeys(c.ALL, 0)
    for n, shop in enumerate(shops):
        report = shop.write(tmp_path / f"report_{n}.csv")
        found, outcome = await scoped(storage, report, tmp_path / f"scoped_{n}")
        assert found == await full_read(storage, report, tmp_path / f"full_{n}"), n
        # Loose lines, and only they, make the run read the payments they can match.
        assert outcome.extra["read"]["candidates"] is bool(shop.by_amount), n
        missing = {r.order_id for r in found if r.category == c.MISSING_AT_PROVIDER}
        assert f"ord_S{n}F3" in missing, n
        assert not {f"ord_S{n}F1", f"ord_S{n}F2"} & missing, n
        by_amount = [r.order_id for r in found if r.via == "amount_and_date"]
        assert set(shop.by_amount) <= set(by_amount), n
        for r in found:
            seen[r.category] += 1
    # The draws reached every category these reports' lines and orders can end in.
    reached = {c.MATCHED, c.AMOUNT_MISMATCH, c.MISSING_IN_ORDERS, c.MISSING_AT_PROVIDER}
    assert all(seen[category] for category in reached | {c.DUPLICATE, c.REFUND}), seen


async def test_a_report_whose_charges_name_their_payments_reads_no_other_payment(
    storage: SqlStorage, pg_url: str, tmp_path: Path
) -> None:
    """Every payment of the shop's window but the day's, the named ones and the unclaimed
    orders' other payments is left unread: what is read does not grow with the window."""
    shop = await generate(storage, pg_url, 0, loose=False)
    report = shop.write(tmp_path / "report.csv")
    found, outcome = await scoped(storage, report, tmp_path / "scoped")
    assert found == await full_read(storage, report, tmp_path / "full")
    with psycopg.connect(pg_url) as conn:
        (window,) = conn.execute(
            "SELECT count(*) FROM payment_attempts WHERE state IN ('succeeded', 'refunded') "
            "AND updated_at BETWEEN %s AND %s",
            (shop.day - timedelta(days=4), shop.day + timedelta(days=5)),
        ).fetchone() or (0,)
    read = outcome.extra["read"]
    assert read["candidates"] is False
    assert 0 < read["attempts"] < window / 2, (read, window)


async def test_a_loose_line_reads_only_the_payments_of_its_amount(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """One charge naming nothing, of 8.81: besides the named payment and the period's, the
    run reads the two orders of that amount paid near the line, not the forty others of
    the window."""
    day = FIRST_DAY
    async with storage() as uow:
        await uow.orders.add(paid_order("A", provider_ref="pi_A", amount=500, at=day))
        for i in range(40):
            at = day - timedelta(days=2, minutes=i)
            await uow.orders.add(paid_order(f"O{i}", provider_ref=f"pi_O{i}", amount=900, at=at))
        paid = day + timedelta(minutes=90)
        await uow.orders.add(paid_order("N", provider_ref="pi_N", amount=881, at=paid))
        near = day - timedelta(days=2)
        await uow.orders.add(paid_order("M", provider_ref="pi_M", amount=881, at=near))
        await uow.commit()
    shop = Shop(day)
    shop.line("charge", day + timedelta(hours=1), "5.00", ref="pi_A")
    shop.line("charge", day + timedelta(hours=2), "8.81")
    report = shop.write(tmp_path / "report.csv")
    found, outcome = await scoped(storage, report, tmp_path / "scoped")
    assert found == await full_read(storage, report, tmp_path / "full")
    # N is paid in the period, and M near it, for the same amount: two candidates, so the
    # loose line stays unmatched and N is missing (M, paid before the period, is not).
    loose = next(r for r in found if r.line == 3)
    assert (loose.category, loose.order_id) == (c.MISSING_IN_ORDERS, None)
    assert [r.order_id for r in found if r.category == c.MISSING_AT_PROVIDER] == ["ord_N"]
    # A and N (named, in the period), then N again and M (the amount's candidates).
    assert outcome.extra["read"] == {"orders": 4, "attempts": 4, "candidates": True}


@pytest.mark.parametrize(
    ("kind", "currency", "minutes"),
    [("charge", "EUR", 0), ("refund", "EUR", 0), ("charge", "USD", 90)],
    ids=["charge", "refund", "other-currency"],
)
async def test_a_reference_two_orders_share_counts_once_however_it_is_read(
    storage: SqlStorage, tmp_path: Path, kind: str, currency: str, minutes: int
) -> None:
    """P and Q were paid under one reference; a line names it (the engine keeps it for P,
    the lower id, and Q is neither confirmed nor missing) and a loose charge has Q's
    amount. Q's payment, read again as a candidate, must not count as one no line names:
    the loose line matches nothing, and Q is not missing (found by a review)."""
    mid = FIRST_DAY + timedelta(hours=12)
    paid = mid + timedelta(minutes=minutes)
    async with storage() as uow:
        await uow.orders.add(paid_order("P", provider_ref="pi_X", amount=1000, at=paid))
        q = paid_order("Q", provider_ref="pi_X", amount=2000, at=paid, currency=currency)
        await uow.orders.add(q)
        await uow.commit()
    shop = Shop(FIRST_DAY)
    shop.line(kind, mid + timedelta(hours=1), "10.00" if kind == "charge" else "-10.00", ref="pi_X")
    shop.line("charge", mid + timedelta(hours=2), "20.00")
    report = shop.write(tmp_path / "report.csv")
    found, outcome = await scoped(storage, report, tmp_path / "scoped")
    assert outcome.extra["read"]["candidates"] is True
    assert found == await full_read(storage, report, tmp_path / "full")
    loose = next(r for r in found if r.line == 3)
    assert (loose.category, loose.order_id) == (c.MISSING_IN_ORDERS, None)
    assert not [r for r in found if r.category == c.MISSING_AT_PROVIDER]


async def test_an_order_reference_two_orders_were_paid_under_names_the_lower_order_every_time(
    storage: SqlStorage, tmp_path: Path
) -> None:
    """P (10.00) and Q (20.00) were paid under one reference, which a charge of 20.00 gives
    only as its order reference (a wallet bill's ``out_trade_no``). The engine picks one
    order for it, the lower id as for a line's reference: P, for another amount. Before, it
    took whichever row DuckDB met first, and two runs over the same rows could differ
    (found by a review)."""
    mid = FIRST_DAY + timedelta(hours=12)
    async with storage() as uow:
        await uow.orders.add(paid_order("Q", provider_ref="pi_X", amount=2000, at=mid))
        await uow.orders.add(paid_order("P", provider_ref="pi_X", amount=1000, at=mid))
        await uow.commit()
    shop = Shop(FIRST_DAY)
    shop.line("charge", mid + timedelta(hours=1), "20.00", order="pi_X")
    report = shop.write(tmp_path / "report.csv")
    for run in range(6):
        found, _ = await scoped(storage, report, tmp_path / f"scoped_{run}")
        assert found == await full_read(storage, report, tmp_path / f"full_{run}"), run
        line = next(r for r in found if r.line == 2)
        assert (line.category, line.order_id, line.via) == (
            c.AMOUNT_MISMATCH,
            "ord_P",
            "reference",
        ), run


@pytest.mark.parametrize(
    ("asked", "small", "threads"),
    [(None, True, 1), (None, False, None), (2, True, 2)],
)
async def test_a_small_report_is_matched_on_one_thread(
    storage: SqlStorage,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    asked: int | None,
    small: bool,
    threads: int | None,
) -> None:
    """Reports of a few megabytes are matched on one thread (DuckDB's parallel operators
    cost more than they save there), larger ones on DuckDB's default, and ``threads`` when
    asked; the results are the same (the full read runs on the default)."""
    shop = await generate(storage, pg_url, 0, loose=True)
    report = shop.write(tmp_path / "report.csv")
    if not small:
        monkeypatch.setattr(reconcile_run, "SMALL_REPORTS", report.stat().st_size - 1)
    work = tmp_path / "scoped"
    work.mkdir()
    options = EngineOptions(provider="stripe", threads=asked)
    engine, _ = await reconcile(storage, Request([report], options=options, formats=FORMATS), work)
    try:
        row = engine._db.execute("SELECT current_setting('threads')").fetchone()
        found = results(engine)
    finally:
        engine.close()
    default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()
    assert row == ((threads,) if threads else default)
    assert found == await full_read(storage, report, tmp_path / "full")
