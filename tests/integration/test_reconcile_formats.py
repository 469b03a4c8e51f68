"""Each provider's report, as its documentation describes it, against the same orders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.reconcile.engine import Engine, EngineOptions, Outcome
from orderguard.reconcile.run import Request, reconcile
from tests.conftest import open_storage
from tests.reconcile_support import EXPECTED, seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"


@dataclass(frozen=True)
class Case:
    file: str
    ref: Callable[[str], str]
    currency: str = "EUR"
    mapping: str | None = None
    #: Lines reported as refunds/chargebacks/fees/other beyond the scenario's refund.
    extra: tuple[tuple[str, int], ...] = (("chargeback", 1), ("fee", 1))


CASES = {
    "stripe itemized": Case("stripe_itemized.csv", lambda x: f"pi_{x}"),
    "stripe balance": Case(
        "stripe_balance.csv",
        lambda x: f"ch_{x}",
        extra=(("chargeback", 1), ("fee", 1), ("other", 1)),
    ),
    "adyen": Case(
        "adyen_settlement.csv",
        lambda x: f"8815000000000{x}01",
        extra=(("chargeback", 1), ("fee", 1), ("other", 1)),
    ),
    "paypal": Case("paypal_stl.csv", lambda x: f"1{x}{x}11111{x}{x}111111{x}"),
    "alipay": Case(
        "alipay_trade.csv", lambda x: f"2026110222001400001000000{x}01", "CNY", extra=()
    ),
    "wechatpay": Case(
        "wechatpay_trade.csv", lambda x: f"4200000001202611020000000{x}01", "CNY", extra=()
    ),
    "csv": Case("generic.csv", lambda x: f"g-{x}", mapping="generic_mapping.toml"),
}


async def run_case(tmp_path: Path, case: Case, *, fmt: str = "auto") -> tuple[Engine, Outcome]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'orders.db'}")
    try:
        await seed(storage, case.ref, currency=case.currency)
        mapping = FIXTURES / case.mapping if case.mapping else None
        request = Request([FIXTURES / case.file], fmt, mapping, formats=FORMATS)
        work = tmp_path / "work"
        work.mkdir()
        return await reconcile(storage, request, work)
    finally:
        await storage.close()


@pytest.mark.parametrize("name", CASES)
async def test_every_category_of_each_format_is_counted_right(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    engine, outcome = await run_case(tmp_path, case)
    engine.close()
    expected = dict.fromkeys(outcome.counts, 0) | EXPECTED | dict(case.extra)
    assert outcome.errors == []
    assert outcome.counts == expected


@pytest.mark.parametrize("name", ["stripe itemized", "adyen", "paypal", "alipay", "wechatpay"])
async def test_the_named_format_reads_its_report(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    fmt = case.file.split("_")[0]
    engine, outcome = await run_case(tmp_path, case, fmt=fmt)
    engine.close()
    assert outcome.counts["matched"] == EXPECTED["matched"]


async def test_each_exception_names_its_line_order_and_amounts(tmp_path: Path) -> None:
    engine, _ = await run_case(tmp_path, CASES["adyen"])
    rows = {
        (r.category, r.line, r.order_id, r.provider_ref, r.amount, r.expected_amount)
        for batch in engine.results()
        for r in batch
    }
    engine.close()
    assert rows == {
        ("amount_mismatch", 3, "ord_B", "8815000000000B01", 900, 1000),
        ("currency_mismatch", 4, "ord_C", "8815000000000C01", 1200, 1200),
        ("duplicate", 6, "ord_D", "8815000000000D01", 3000, 3000),
        ("missing_in_orders", 9, None, "8815000000000X01", 9900, None),
        ("missing_at_provider", None, "ord_E", "8815000000000E01", None, 4000),
    }


async def test_matches_say_how_they_were_made(tmp_path: Path) -> None:
    engine, _ = await run_case(tmp_path, CASES["adyen"])
    via = {r.order_id: r.via for batch in engine.results(frozenset({"matched"})) for r in batch}
    engine.close()
    assert via == {
        "ord_A": "reference",
        "ord_D": "reference",
        "ord_F": "merchant_reference",
        "ord_G": "amount_and_date",
    }


async def test_gross_fee_and_net_are_totalled_per_category_and_currency(tmp_path: Path) -> None:
    engine, outcome = await run_case(tmp_path, CASES["stripe itemized"])
    engine.close()
    totals = {(t.category, t.currency): (t.count, t.gross, t.fee, t.net) for t in outcome.totals}
    # A 25.00, D 30.00, F 50.00, G 15.50 with fees 0.98, 1.15, 1.70, 0.67.
    assert totals[("matched", "EUR")] == (4, 12050, 450, 11600)
    assert totals[("refund", "EUR")] == (1, -500, 0, -500)
    assert totals[("chargeback", "EUR")] == (1, -1000, 1500, -2500)
    assert totals[("currency_mismatch", "USD")] == (1, 1200, 60, 1140)
    assert totals[("missing_at_provider", "EUR")] == (1, 4000, 0, 4000)


async def test_a_paid_order_outside_the_reports_period_is_not_missing(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'orders.db'}")
    try:
        await seed(storage, lambda x: f"pi_{x}")
        options = EngineOptions(
            period_from=datetime(2026, 11, 3, tzinfo=UTC),
            period_to=datetime(2026, 11, 4, tzinfo=UTC),
        )
        request = Request([FIXTURES / "stripe_itemized.csv"], options=options, formats=FORMATS)
        engine, outcome = await reconcile(storage, request, tmp_path)
        engine.close()
    finally:
        await storage.close()
    assert outcome.counts["missing_at_provider"] == 0
    assert outcome.counts["matched"] == 4


@pytest.mark.parametrize(
    ("name", "written", "utc"),
    [
        # the bills write China Standard Time (UTC+8) without a zone
        ("alipay", "2026-11-02 10:00:05", datetime(2026, 11, 2, 2, 0, 5, tzinfo=UTC)),
        ("wechatpay", "2026-11-02 10:00:00", datetime(2026, 11, 2, 2, 0, 0, tzinfo=UTC)),
        # most reports write UTC
        ("stripe itemized", None, None),
    ],
)
async def test_a_wallet_bills_times_are_china_time(
    tmp_path: Path, name: str, written: str | None, utc: datetime | None
) -> None:
    engine, _ = await run_case(tmp_path, CASES[name])
    at = {r.order_id: r.at for batch in engine.results(frozenset({"matched"})) for r in batch}
    engine.close()
    if utc is None:  # a UTC report's time is read as written
        assert at["ord_A"] is not None and at["ord_A"].utcoffset() is not None
        return
    assert written is not None and written in (FIXTURES / CASES[name].file).read_bytes().decode(
        "gbk" if name == "alipay" else "utf-8"
    )
    assert at["ord_A"] == utc
