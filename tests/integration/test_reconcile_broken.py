"""Broken input: each bad line is reported with its file and line, the rest reconciled."""

from __future__ import annotations

from pathlib import Path

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.reconcile.engine import Outcome
from orderguard.reconcile.run import Request, reconcile
from tests.conftest import open_storage
from tests.reconcile_support import seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"


async def run(tmp_path: Path, *files: Path, ref: str = "pi_{}", currency: str = "EUR") -> Outcome:
    storage = await open_storage(f"sqlite:///{tmp_path / 'orders.db'}")
    try:
        await seed(storage, ref.format, currency=currency)
        work = tmp_path / "work"
        work.mkdir()
        engine, outcome = await reconcile(storage, Request(list(files), formats=FORMATS), work)
        engine.close()
        return outcome
    finally:
        await storage.close()


def stripe_lines() -> list[bytes]:
    return (FIXTURES / "stripe_itemized.csv").read_bytes().splitlines(keepends=True)


def errors(outcome: Outcome) -> list[tuple[int, str]]:
    return [(e.line, e.message) for e in outcome.errors]


async def test_a_truncated_file_reports_its_last_line_and_reconciles_the_rest(
    tmp_path: Path,
) -> None:
    lines = stripe_lines()
    cut = tmp_path / "truncated.csv"
    cut.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # the fee line, cut mid-way
    outcome = await run(tmp_path, cut)
    assert errors(outcome) == [(12, "expected 15 columns, found 4 (the file looks truncated)")]
    assert outcome.counts["matched"] == 4
    assert outcome.counts["refund"] == 1 and outcome.counts["fee"] == 0


async def test_a_line_with_the_wrong_number_of_columns_is_reported(tmp_path: Path) -> None:
    lines = stripe_lines()
    lines[3] = lines[3].rstrip(b"\n") + b",surplus\n"  # line 4: order C
    bad = tmp_path / "extra-column.csv"
    bad.write_bytes(b"".join(lines))
    outcome = await run(tmp_path, bad)
    assert errors(outcome) == [(4, "expected 15 columns, found 16")]
    assert outcome.counts["currency_mismatch"] == 0
    assert outcome.counts["matched"] == 4 and outcome.counts["duplicate"] == 1
    # Lines after the rejected one keep their own numbers.
    assert outcome.counts["missing_in_orders"] == 1


async def test_lines_after_a_rejected_line_keep_their_numbers(tmp_path: Path) -> None:
    lines = stripe_lines()
    lines[2] = b"broken,line\n"
    lines[5] = b"also,broken\n"
    bad = tmp_path / "two-bad.csv"
    bad.write_bytes(b"".join(lines))
    storage = await open_storage(f"sqlite:///{tmp_path / 'orders.db'}")
    try:
        await seed(storage, "pi_{}".format)
        engine, _ = await reconcile(storage, Request([bad], formats=FORMATS), tmp_path)
    finally:
        await storage.close()
    refs = {
        r.line: r.provider_ref
        for b in engine.results(frozenset({"missing_in_orders", "refund"}))
        for r in b
    }
    engine.close()
    assert refs == {9: "pi_X", 10: "pi_A"}


async def test_an_unknown_currency_is_reported_and_the_rest_reconciled(tmp_path: Path) -> None:
    lines = stripe_lines()
    lines[7] = lines[7].replace(b",eur,", b",xyz,")  # line 8: order G
    bad = tmp_path / "currency.csv"
    bad.write_bytes(b"".join(lines))
    outcome = await run(tmp_path, bad)
    assert errors(outcome) == [(8, "unknown currency XYZ")]
    assert outcome.counts["matched"] == 3
    assert outcome.counts["amount_mismatch"] == 1


async def test_an_amount_with_more_decimals_than_its_currency_is_reported(tmp_path: Path) -> None:
    lines = stripe_lines()
    lines[1] = lines[1].replace(b",25.00,", b",25.001,")
    bad = tmp_path / "decimals.csv"
    bad.write_bytes(b"".join(lines))
    outcome = await run(tmp_path, bad)
    assert errors(outcome) == [(2, "amount 25.001 is not an amount of EUR")]


async def test_a_line_in_another_encoding_is_reported_in_a_utf8_report(tmp_path: Path) -> None:
    lines = stripe_lines()
    lines[4] = lines[4].replace(b"ord_D", "订单 D".encode("gbk"))  # line 5, an order id
    bad = tmp_path / "mixed-encoding.csv"
    bad.write_bytes(b"".join(lines))
    outcome = await run(tmp_path, bad)
    assert errors(outcome) == [(5, "not valid UTF-8 text (wrong encoding?)")]
    assert outcome.counts["matched"] == 4  # D is still confirmed by line 6
    assert outcome.counts["duplicate"] == 0


async def test_a_gbk_bill_with_a_broken_line_reports_that_line(tmp_path: Path) -> None:
    data = (FIXTURES / "alipay_trade.csv").read_bytes().split(b"\r\n")
    data[6] = data[6][:-3] + b"\xff\xff\xff"  # line 7 (order B): bytes that are no GBK text
    bad = tmp_path / "alipay.csv"
    bad.write_bytes(b"\r\n".join(data))
    outcome = await run(tmp_path, bad, ref="2026110222001400001000000{}01", currency="CNY")
    assert [e.line for e in outcome.errors] == [7]
    assert outcome.errors[0].message.startswith("not valid gb18030 text")
    assert outcome.counts["matched"] == 4 and outcome.counts["amount_mismatch"] == 0


async def test_an_unrecognised_file_is_reported_and_the_others_reconciled(tmp_path: Path) -> None:
    other = tmp_path / "notes.csv"
    other.write_text("when,what\n2026-11-02,lunch\n")
    outcome = await run(tmp_path, other, FIXTURES / "stripe_itemized.csv")
    assert len(outcome.errors) == 1
    error = outcome.errors[0]
    assert (error.file, error.line) == (str(other), 0)
    assert "line 1 is not the header of any known report" in error.message
    assert outcome.counts["matched"] == 4
