"""Amounts in every notation become integer minor units of their currency, or an error;
a provider's type values become kinds whatever their spelling."""

from __future__ import annotations

import duckdb
import pytest

from orderguard.domain.money import EXPONENTS
from orderguard.reconcile import sql
from orderguard.reconcile.formats import kind_case


@pytest.fixture(scope="module")
def db() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    sql.install(conn)
    return conn


def minor(
    db: duckdb.DuckDBPyConnection, text: str, currency: str, decimal: str = "."
) -> int | None:
    assert currency in EXPONENTS, f"{currency} is in the exponent table"
    row = db.execute(
        "SELECT og_whole(og_micro(?, ?), og_unit(CAST(? AS og_code)), false)",
        [text, decimal, currency],
    ).fetchone()
    assert row is not None
    return None if row[0] is None else int(row[0])


@pytest.mark.parametrize(
    ("text", "currency", "decimal", "expected"),
    [
        ("25.00", "EUR", ".", 2500),
        ("-5.5", "EUR", ".", -550),
        ("1,234.50", "USD", ".", 123450),
        ("1.234,50", "EUR", ".", 123450),
        ("1234,5", "EUR", ",", 123450),
        ("1.234", "EUR", ",", 123400),
        ("1,234", "USD", ".", 123400),
        ("12,50", "EUR", ".", 1250),
        ("€ 1 234,50", "EUR", ",", 123450),
        ("1,000", "JPY", ".", 1000),
        ("1000", "JPY", ".", 1000),
        ("1.234", "KWD", ".", 1234),
        ("0.0001", "CLF", ".", 1),
    ],
)
def test_an_amount_becomes_minor_units_with_its_currencys_exponent(
    db: duckdb.DuckDBPyConnection, text: str, currency: str, decimal: str, expected: int
) -> None:
    assert minor(db, text, currency, decimal) == expected


@pytest.mark.parametrize(
    ("text", "currency"), [("25.001", "EUR"), ("1.5", "JPY"), ("abc", "EUR"), ("", "EUR")]
)
def test_an_amount_its_currency_cannot_hold_is_refused(
    db: duckdb.DuckDBPyConnection, text: str, currency: str
) -> None:
    assert minor(db, text, currency) is None


def test_amounts_already_in_minor_units_are_not_scaled(db: duckdb.DuckDBPyConnection) -> None:
    row = db.execute(
        "SELECT og_whole(og_micro('2500', '.'), og_unit('EUR'::og_code), true)"
    ).fetchone()
    assert row == (2500,)
    row = db.execute(
        "SELECT og_whole(og_micro('2500.5', '.'), og_unit('EUR'::og_code), true)"
    ).fetchone()
    assert row == (None,)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-11-02 10:00:00", "2026-11-02T10:00:00+00:00"),
        ("2026-11-02T10:00:00Z", "2026-11-02T10:00:00+00:00"),
        ("2026/11/02 02:00:00 -0800", "2026-11-02T10:00:00+00:00"),
        ("2026年11月02日 10:00:00", "2026-11-02T10:00:00+00:00"),
    ],
)
def test_report_times_are_read_as_utc(db: duckdb.DuckDBPyConnection, text: str, iso: str) -> None:
    row = db.execute("SELECT og_time(?)", [text]).fetchone()
    assert row is not None and row[0].isoformat() == iso


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("charge", "charge"),  # as the mapping spells it: the first, exact branch
        ("Charge", "charge"),  # spelled otherwise: lowered, then mapped
        ("REFUND_FAILURE", "refund"),
        ("network_cost", "fee"),
        ("transfer", "other"),
        (None, "other"),
    ],
)
def test_a_kind_is_mapped_whatever_its_spelling(
    db: duckdb.DuckDBPyConnection, value: str | None, kind: str
) -> None:
    mapping = {
        "charge": ("charge",),
        "refund": ("refund", "Refund_Failure"),
        "fee": ("fee", "network_cost"),
    }
    row = db.execute(
        f"SELECT {kind_case('x', mapping)}, typeof({kind_case('x', mapping)}) FROM (SELECT ? AS x)",
        [value],
    ).fetchone()
    assert row == (kind, "ENUM('charge', 'refund', 'chargeback', 'fee', 'payout', 'other')")
