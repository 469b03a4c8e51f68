"""``orderguard reconcile`` as finance runs it, on a SQLite database."""

from __future__ import annotations

import asyncio
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
