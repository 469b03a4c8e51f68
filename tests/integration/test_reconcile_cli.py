"""``orderguard reconcile`` as finance runs it, on a SQLite database."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orderguard.cli import main
from tests.conftest import open_storage
from tests.reconcile_support import seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"
STRIPE = str(FIXTURES / "stripe_itemized.csv")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'orders.db'}"

    async def prepare() -> None:
        storage = await open_storage(url)
        await seed(storage, "pi_{}".format)
        await storage.close()

    asyncio.run(prepare())
    monkeypatch.setenv("ORDERGUARD_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    return url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["reconcile", *args])
    return result.exit_code, result.output


def test_the_summary_the_html_report_and_the_exceptions_file(database: str, tmp_path: Path) -> None:
    code, out = run(STRIPE, "--out", str(tmp_path / "report.html"))
    assert code == 0, out
    assert "exceptions: 5" in out
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "amount mismatch" in page and "pi_X" in page
    code, out = run(STRIPE, "--out", str(tmp_path / "exceptions.json"))
    document = json.loads((tmp_path / "exceptions.json").read_text())
    assert sorted(e["category"] for e in document["exceptions"]) == [
        "amount_mismatch",
        "currency_mismatch",
        "duplicate",
        "missing_at_provider",
        "missing_in_orders",
    ]
    assert document["errors"] == []


def test_the_summary_speaks_chinese(database: str) -> None:
    code, out = run(STRIPE, "--locale", "zh-CN")
    assert code == 0, out
    assert "已匹配" in out and "金额不符" in out


def test_apply_twice_changes_nothing_the_second_time(database: str) -> None:
    code, out = run(STRIPE, "--apply")
    assert code == 0, out
    assert "5 exceptions recorded, 4 orders flagged, 1 orphan charges handed to the sweep" in out
    code, out = run(STRIPE, "--apply")
    assert code == 0, out
    assert "these files were applied before: nothing changed" in out


def test_bad_lines_are_listed_and_the_command_fails(database: str, tmp_path: Path) -> None:
    lines = Path(STRIPE).read_text().splitlines(keepends=True)
    lines[2] = "cut,short\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    code, out = run(str(bad), "--out", str(tmp_path / "x.csv"))
    assert code == 1
    assert f"{bad}:3: expected 15 columns, found 2" in out
    rows = (tmp_path / "x.csv").read_text().splitlines()
    assert rows[-1].startswith(f"unreadable,{bad},3,")


def test_a_generic_csv_needs_its_mapping(database: str) -> None:
    code, out = run(str(FIXTURES / "generic.csv"), "--format", "csv")
    assert code == 2
    assert "--format csv needs --mapping FILE" in out


def _stripe_with(*lines: str) -> str:
    """The Stripe fixture with ``lines`` (charges, after the fixture's own) added."""
    return Path(STRIPE).read_text() + "".join(
        f"po_1Q,2026-11-04 00:00:00,txn_{n},2026-11-02 12:30:00,2026-11-04 00:00:00,{line}\n"
        for n, line in enumerate(lines)
    )


def test_formula_cells_of_the_exceptions_csv_are_neutralised(database: str, tmp_path: Path) -> None:
    # A report a stranger could have shaped: references that a spreadsheet would run, a
    # negative orphan charge, and a file whose very name starts with "=".
    report = tmp_path / "=cmd.csv"
    report.write_text(
        _stripe_with(
            "eur,7.00,0.00,7.00,charge,Evil,ch_e1,=HYPERLINK(1),ch_e1,@SUM(A1)",
            "eur,8.00,0.00,8.00,charge,Evil,ch_e2,+cmd|calc!A0,ch_e2,\tx",
            "eur,-3.50,0.00,-3.50,charge,Odd,ch_e3,-2+3,ch_e3,-12.50",
            "eur,1.001,0.00,1.00,charge,Cut,ch_e4,pi_e4,ch_e4,",
        )
    )
    code, out = run("=cmd.csv", "--out", "x.csv")
    assert code == 1, out  # the 1.001 line cannot be read
    with (tmp_path / "x.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    orphans = {r["provider_ref"]: r for r in rows if r["category"] == "missing_in_orders"}
    assert set(orphans) == {"pi_X", "'=HYPERLINK(1)", "'+cmd|calc!A0", "'-2+3"}
    assert orphans["'=HYPERLINK(1)"]["order_ref"] == "'@SUM(A1)"
    assert orphans["'+cmd|calc!A0"]["order_ref"] == "'\tx"
    # A negative amount stays a number: the amount column and a reference that is one.
    assert orphans["'-2+3"]["amount"] == "-350"
    assert orphans["'-2+3"]["order_ref"] == "-12.50"
    assert {r["file"] for r in rows if r["file"]} == {"'=cmd.csv"}
    assert [r["line"] for r in rows if r["category"] == "unreadable"] == ["16"]


def test_the_json_file_keeps_the_reports_text_as_it_is(database: str, tmp_path: Path) -> None:
    (tmp_path / "evil.csv").write_text(
        _stripe_with("eur,7.00,0.00,7.00,charge,Evil,ch_e1,=HYPERLINK(1),ch_e1,@SUM(A1)")
    )
    code, out = run("evil.csv", "--out", "x.json")
    assert code == 0, out
    exceptions = json.loads((tmp_path / "x.json").read_text())["exceptions"]
    assert {e["provider_ref"] for e in exceptions} >= {"=HYPERLINK(1)"}


@pytest.mark.parametrize(
    "name,neighbour", [("report*.csv", "report-2.csv"), ("r[1].csv", "r1.csv")]
)
def test_a_report_path_is_read_literally_never_as_a_pattern(
    database: str, tmp_path: Path, name: str, neighbour: str
) -> None:
    # The neighbour matches the name read as a pattern; its orphan charge must not count.
    (tmp_path / name).write_text(Path(STRIPE).read_text())
    (tmp_path / neighbour).write_text(
        _stripe_with("eur,7.00,0.00,7.00,charge,Other,ch_o,pi_other,ch_o,")
    )
    code, out = run(name, "--out", "x.csv")
    assert code == 0, out
    assert "exceptions: 5" in out
    assert "pi_other" not in (tmp_path / "x.csv").read_text()


def test_a_report_path_that_does_not_exist_is_refused_by_name(database: str) -> None:
    code, out = run("nowhere*.csv")
    assert code == 2
    assert "nowhere*.csv" in out and "does not exist" in out


#: The Stripe fixture against orders A-G, worked out by hand from the fixture's lines (in
#: minor units): A, D, F and G confirm their orders; B says 9.00 for 10.00; C is in USD; D
#: is charged twice; X has no order; E (40.00, paid at 10:30 on 2 November) is missing.
STRIPE_SUMMARY = {
    "provider": "stripe",
    # From the first line's time to the end of the last line's minute (the report's times
    # are whole minutes).
    "period": {"from": "2026-11-02T10:00:00+00:00", "to": "2026-11-03T10:00:59.999999+00:00"},
    "files": [{"file": STRIPE, "lines": 11, "read": True}],
    "lines": 11,
    "counts": {
        "matched": 4,
        "amount_mismatch": 1,
        "currency_mismatch": 1,
        "missing_in_orders": 1,
        "missing_at_provider": 1,
        "duplicate": 1,
        "refund": 1,
        "chargeback": 1,
        "fee": 1,
        "other": 0,
    },
    "exceptions": 5,
    "errors": 0,
    "totals": [
        {"category": "amount_mismatch", "currency": "EUR", "count": 1,
         "gross": 900, "fee": 51, "net": 849},
        {"category": "chargeback", "currency": "EUR", "count": 1,
         "gross": -1000, "fee": 1500, "net": -2500},
        {"category": "currency_mismatch", "currency": "USD", "count": 1,
         "gross": 1200, "fee": 60, "net": 1140},
        {"category": "duplicate", "currency": "EUR", "count": 1,
         "gross": 3000, "fee": 115, "net": 2885},
        {"category": "fee", "currency": "EUR", "count": 1, "gross": -200, "fee": 0, "net": -200},
        {"category": "matched", "currency": "EUR", "count": 4,
         "gross": 2500 + 3000 + 5000 + 1550, "fee": 98 + 115 + 170 + 67, "net": 11600},
        {"category": "missing_at_provider", "currency": "EUR", "count": 1,
         "gross": 4000, "fee": 0, "net": 4000},
        {"category": "missing_in_orders", "currency": "EUR", "count": 1,
         "gross": 9900, "fee": 312, "net": 9588},
        {"category": "refund", "currency": "EUR", "count": 1, "gross": -500, "fee": 0, "net": -500},
    ],
}  # fmt: skip


def test_the_json_file_carries_the_summary_the_terminal_shows(
    database: str, tmp_path: Path
) -> None:
    code, out = run(STRIPE, "--out", "report.json")
    assert code == 0, out
    assert "period: 2026-11-02T10:00:00+00:00/2026-11-03T10:00:59.999999+00:00" in out
    assert f"files: {STRIPE} (11)" in out
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["summary"] == STRIPE_SUMMARY
    assert len(document["exceptions"]) == 5


def test_a_csv_files_summary_is_a_json_file_beside_it(database: str, tmp_path: Path) -> None:
    code, out = run(STRIPE, "--out", "report.csv")
    assert code == 0, out
    assert "wrote report.csv and report.summary.json" in out
    assert json.loads((tmp_path / "report.summary.json").read_text()) == STRIPE_SUMMARY
    with (tmp_path / "report.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 5  # the CSV itself: rows only


def test_the_summary_counts_every_line_of_each_file_and_names_a_file_it_could_not_read(
    database: str, tmp_path: Path
) -> None:
    lines = Path(STRIPE).read_text().splitlines(keepends=True)
    lines[2] = "cut,short\n"
    (tmp_path / "bad.csv").write_text("".join(lines))
    (tmp_path / "empty.csv").write_text("")
    code, _ = run("bad.csv", "empty.csv", "--out", "report.json")
    assert code == 1
    found = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert found["files"] == [
        {"file": "bad.csv", "lines": 11, "read": True},
        {"file": "empty.csv", "lines": 0, "read": False},
    ]
    assert (found["lines"], found["errors"]) == (11, 2)
