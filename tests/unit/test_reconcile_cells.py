"""CSV cells a spreadsheet would run as formulas get a quote; numbers stay numbers."""

from __future__ import annotations

import duckdb
import pytest

from orderguard.reconcile import sql
from orderguard.reconcile.cells import neutralise

#: Cell -> what the exceptions CSV holds (OWASP: a quote before a formula-like cell).
CELLS = {
    "=HYPERLINK(http://evil.example)": "'=HYPERLINK(http://evil.example)",
    "+cmd|' /C calc'!A0": "'+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)": "'@SUM(A1:A9)",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "-": "'-",
    "-1e5": "'-1e5",
    # plain numbers are read as numbers, never run: a negative amount stays readable
    "-12.50": "-12.50",
    "+3": "+3",
    "-500": "-500",
    # ordinary text is untouched
    "pi_3Q": "pi_3Q",
    "ord_A": "ord_A",
    "a=b": "a=b",
    "": "",
}


@pytest.mark.parametrize(("cell", "written"), CELLS.items())
def test_a_cell_is_neutralised_only_when_a_spreadsheet_would_run_it(
    cell: str, written: str
) -> None:
    assert neutralise(cell) == written


def test_the_engines_sql_rule_is_the_same_rule() -> None:
    db = duckdb.connect()
    sql.install(db)
    for cell, written in CELLS.items():
        row = db.execute("SELECT og_cell(?)", [cell]).fetchone()
        assert row is not None and row[0] == written, repr(cell)
    assert db.execute("SELECT og_cell(NULL)").fetchone() == (None,)


def test_values_that_are_not_text_are_written_as_they_are() -> None:
    assert (neutralise(-350), neutralise(None)) == (-350, None)
