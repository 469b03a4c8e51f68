"""The engine on hand-written exports: edge cases the fixtures do not reach."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.reconcile.engine import Engine, EngineOptions, Outcome
from orderguard.reconcile.sources import open_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"
ORDERS = "order_id,merchant_reference,state,currency,amount,created_at\n"
ATTEMPTS = "order_id,provider,provider_ref,state,updated_at\n"


def exports(tmp_path: Path, orders: str, attempts: str) -> tuple[Path, Path]:
    (tmp_path / "orders.csv").write_text(ORDERS + orders)
    (tmp_path / "attempts.csv").write_text(ATTEMPTS + attempts)
    return tmp_path / "orders.csv", tmp_path / "attempts.csv"


def test_two_attempts_with_one_reference_do_not_double_a_line(tmp_path: Path) -> None:
    orders, attempts = exports(
        tmp_path,
        "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n",
        "ord_A,stripe,pi_A,failed,2026-11-02T10:29:00+00:00\n"
        "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n",
    )
    engine = Engine(tmp_path)
    try:
        engine.load_orders(orders, attempts)
        engine.load_report(open_source(FIXTURES / "stripe_itemized.csv", formats=FORMATS))
        outcome = engine.match()
    finally:
        engine.close()
    assert outcome.lines == 11
    assert outcome.counts["matched"] == 1 and outcome.counts["refund"] == 1


def test_two_reports_are_one_reconciliation(tmp_path: Path) -> None:
    orders, attempts = exports(
        tmp_path,
        "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n",
        "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n",
    )
    engine = Engine(tmp_path)
    try:
        engine.load_orders(orders, attempts)
        engine.load_report(open_source(FIXTURES / "stripe_itemized.csv", formats=FORMATS))
        engine.load_report(open_source(FIXTURES / "paypal_stl.csv", formats=FORMATS))
        outcome = engine.match()
        places = {
            (r.file, r.line) for batch in engine.results(frozenset({"duplicate"})) for r in batch
        }
    finally:
        engine.close()
    assert outcome.files == [
        str(FIXTURES / "stripe_itemized.csv"),
        str(FIXTURES / "paypal_stl.csv"),
    ]
    # PayPal's invoice ord_A confirms the order again: a duplicate of the Stripe line.
    assert (str(FIXTURES / "paypal_stl.csv"), 5) in places
    assert outcome.counts["matched"] == 1


def test_a_report_with_only_its_header_confirms_and_accuses_nothing(tmp_path: Path) -> None:
    orders, attempts = exports(
        tmp_path,
        "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n",
        "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n",
    )
    header = tmp_path / "header-only.csv"
    header.write_text((FIXTURES / "stripe_itemized.csv").read_text().splitlines()[0] + "\n")
    engine = Engine(tmp_path)
    try:
        engine.load_orders(orders, attempts)
        engine.load_report(open_source(header, formats=FORMATS))
        outcome = engine.match()
    finally:
        engine.close()
    assert (outcome.lines, outcome.errors, outcome.period_from) == (0, [], None)
    assert sum(outcome.counts.values()) == 0


STRIPE_HEADER = (
    "automatic_payout_id,automatic_payout_effective_at,balance_transaction_id,created_utc,"
    "available_on_utc,currency,gross,fee,net,reporting_category,description,charge_id,"
    "payment_intent_id,source_id,payment_metadata[order_id]\n"
)


def stripe_line(category: str, gross: str, ref: str, order: str, at: str = "10:30:00") -> str:
    return (
        f"po_1,2026-11-04 00:00:00,txn_{ref}_{category},2026-11-02 {at},2026-11-04 00:00:00,"
        f"eur,{gross},0.00,{gross},{category},,ch_{ref},{ref},ch_{ref},{order}\n"
    )


def reconcile(
    tmp_path: Path, orders: str, attempts: str, *reports: str, provider: str | None = None
) -> dict[str, int]:
    """Counts per category of ``reports`` (Stripe itemized lines) against the exports."""
    paths = exports(tmp_path, orders, attempts)
    engine = Engine(tmp_path, EngineOptions(provider=provider))
    try:
        engine.load_orders(*paths)
        for number, lines in enumerate(reports):
            report = tmp_path / f"report_{number}.csv"
            report.write_text(STRIPE_HEADER + lines)
            engine.load_report(open_source(report, formats=FORMATS))
        outcome = engine.match()
    finally:
        engine.close()
    return {k: v for k, v in outcome.counts.items() if v}


PAID = (
    "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n"
    "ord_B,M-B,paid,EUR,4000,2026-11-02T11:00:00+00:00\n"
)
PAID_ATTEMPTS = (
    "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n"
    "ord_B,stripe,pi_B,succeeded,2026-11-02T11:00:00+00:00\n"
)


def test_an_order_named_only_by_a_refund_is_missing_at_the_provider(tmp_path: Path) -> None:
    # The refund of ord_B does not confirm its payment: the report never charged it.
    counts = reconcile(
        tmp_path,
        PAID,
        PAID_ATTEMPTS,
        stripe_line("charge", "25.00", "pi_A", "ord_A")
        + stripe_line("refund", "-40.00", "pi_B", "ord_B", at="11:30:00"),
    )
    assert counts == {"matched": 1, "refund": 1, "missing_at_provider": 1}


def test_a_charge_and_its_refund_in_two_reports_confirm_the_order(tmp_path: Path) -> None:
    counts = reconcile(
        tmp_path,
        PAID,
        PAID_ATTEMPTS,
        stripe_line("refund", "-25.00", "pi_A", "ord_A", at="12:00:00")
        + stripe_line("charge", "40.00", "pi_B", "ord_B", at="11:00:00"),
        stripe_line("charge", "25.00", "pi_A", "ord_A"),
    )
    assert counts == {"matched": 2, "refund": 1}


def test_an_unreadable_charge_line_confirms_nothing(tmp_path: Path) -> None:
    # The line naming pi_B has an amount EUR cannot hold: reported, and ord_B (paid within
    # the report's period, 10:30 to 12:00) stays unconfirmed.
    counts = reconcile(
        tmp_path,
        PAID,
        PAID_ATTEMPTS,
        stripe_line("charge", "25.00", "pi_A", "ord_A")
        + stripe_line("charge", "40.001", "pi_B", "ord_B", at="11:00:00")
        + stripe_line("fee", "-1.00", "pi_A", "ord_A", at="12:00:00"),
    )
    assert counts == {"matched": 1, "fee": 1, "missing_at_provider": 1}


def test_only_orders_paid_through_the_named_provider_are_expected(tmp_path: Path) -> None:
    # ord_B was paid through Adyen: a Stripe report is not expected to confirm it, nor can
    # its charge lines be ord_B's payment by amount.
    attempts = PAID_ATTEMPTS.replace("ord_B,stripe", "ord_B,adyen")
    lines = (
        stripe_line("charge", "25.00", "pi_A", "ord_A")
        + stripe_line("charge", "40.00", "pi_Z", "", at="11:00:00")
        + stripe_line("fee", "-1.00", "pi_A", "ord_A", at="12:00:00")
    )
    assert reconcile(tmp_path, PAID, attempts, lines, provider="stripe") == {
        "matched": 1,
        "fee": 1,
        "missing_in_orders": 1,
    }
    everyone = tmp_path / "all"
    everyone.mkdir()
    assert reconcile(everyone, PAID, attempts, lines) == {"matched": 2, "fee": 1}


def test_orders_paid_far_from_the_reports_lines_are_not_even_held(tmp_path: Path) -> None:
    # A day's report against a year of orders: only the paid orders near the report's time
    # are kept for matching, so the engine holds about the report, not the whole history.
    year = "".join(
        f"ord_{n},M-{n},paid,EUR,{1000 + n},2025-11-02T10:00:00+00:00\n" for n in range(500)
    )
    attempts = "".join(
        f"ord_{n},stripe,pi_{n},succeeded,2025-11-02T10:00:00+00:00\n" for n in range(500)
    )
    paths = exports(tmp_path, PAID + year, PAID_ATTEMPTS + attempts)
    report = tmp_path / "day.csv"
    report.write_text(STRIPE_HEADER + stripe_line("charge", "25.00", "pi_A", "ord_A"))
    engine = Engine(tmp_path)
    try:
        engine.load_orders(*paths)
        engine.load_report(open_source(report, formats=FORMATS))
        outcome = engine.match()
        held = engine._count("SELECT count(*) FROM unconfirmed")
    finally:
        engine.close()
    assert {k: v for k, v in outcome.counts.items() if v} == {"matched": 1}
    assert held == 1  # ord_B, paid the same day; none of the 500 from a year before


def test_a_line_after_the_named_period_still_finds_its_order_by_amount(tmp_path: Path) -> None:
    # --from/--to cover 2 November; a charge without reference on the 5th is ord_B's payment
    # (40.00, paid on the 6th, within the three-day window of the line).
    attempts = PAID_ATTEMPTS.replace(
        "ord_B,stripe,pi_B,succeeded,2026-11-02T11:00:00",
        "ord_B,stripe,pi_B,succeeded,2026-11-06T11:00:00",
    )
    paths = exports(tmp_path, PAID, attempts)
    report = tmp_path / "late.csv"
    report.write_text(
        STRIPE_HEADER
        + stripe_line("charge", "25.00", "pi_A", "ord_A")
        + stripe_line("charge", "40.00", "pi_Z", "").replace(
            "2026-11-02 10:30:00", "2026-11-05 10:30:00"
        )
    )
    engine = Engine(
        tmp_path,
        EngineOptions(
            period_from=datetime(2026, 11, 2, tzinfo=UTC),
            period_to=datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC),
        ),
    )
    try:
        engine.load_orders(*paths)
        engine.load_report(open_source(report, formats=FORMATS))
        outcome = engine.match()
        via = [r.via for batch in engine.results(frozenset({"matched"})) for r in batch]
    finally:
        engine.close()
    assert {k: v for k, v in outcome.counts.items() if v} == {"matched": 2}
    assert sorted(via) == ["amount_and_date", "reference"]


def _period_of(tmp_path: Path, lines: str, orders: str, attempts: str) -> tuple[Outcome, set[str]]:
    """The outcome of one Stripe report of ``lines``, and the orders reported missing."""
    paths = exports(tmp_path, orders, attempts)
    report = tmp_path / "period.csv"
    report.write_text(STRIPE_HEADER + lines)
    engine = Engine(tmp_path)
    try:
        engine.load_orders(*paths)
        engine.load_report(open_source(report, formats=FORMATS))
        outcome = engine.match()
        missing = {
            r.order_id or ""
            for batch in engine.results(frozenset({"missing_at_provider"}))
            for r in batch
        }
    finally:
        engine.close()
    return outcome, missing


def test_an_order_paid_later_in_the_reports_last_second_is_reported_missing(
    tmp_path: Path,
) -> None:
    # The report is written in whole seconds (one line at 11:59:58) and ends at 12:00:00:
    # it covers 12:00:00.999999, so ord_L (paid 12:00:00.700) is missing at the provider;
    # ord_N, paid at 12:00:01, is the next report's business.
    orders = (
        "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n"
        "ord_L,M-L,paid,EUR,700,2026-11-02T12:00:00.700000+00:00\n"
        "ord_N,M-N,paid,EUR,800,2026-11-02T12:00:01+00:00\n"
    )
    attempts = (
        "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n"
        "ord_L,stripe,pi_L,succeeded,2026-11-02T12:00:00.700000+00:00\n"
        "ord_N,stripe,pi_N,succeeded,2026-11-02T12:00:01+00:00\n"
    )
    lines = stripe_line("charge", "25.00", "pi_A", "ord_A", at="11:59:58") + stripe_line(
        "fee", "-1.00", "pi_A", "ord_A", at="12:00:00"
    )
    outcome, missing = _period_of(tmp_path, lines, orders, attempts)
    assert missing == {"ord_L"}
    assert outcome.period_to == datetime(2026, 11, 2, 12, 0, 0, 999_999, tzinfo=UTC)


def test_a_report_in_whole_minutes_or_days_covers_its_last_minute_or_day(tmp_path: Path) -> None:
    orders = "ord_A,M-A,paid,EUR,2500,2026-11-02T10:30:00+00:00\n"
    attempts = "ord_A,stripe,pi_A,succeeded,2026-11-02T10:30:00+00:00\n"
    minutes = stripe_line("charge", "25.00", "pi_A", "ord_A", at="10:30:00") + stripe_line(
        "fee", "-1.00", "pi_A", "ord_A", at="12:00:00"
    )
    outcome, _ = _period_of(tmp_path, minutes, orders, attempts)
    assert outcome.period_to == datetime(2026, 11, 2, 12, 0, 59, 999_999, tzinfo=UTC)
    days = tmp_path / "days"
    days.mkdir()
    outcome, _ = _period_of(
        days,
        minutes.replace("10:30:00", "00:00:00").replace("12:00:00", "00:00:00"),
        orders,
        attempts,
    )
    assert outcome.period_to == datetime(2026, 11, 2, 23, 59, 59, 999_999, tzinfo=UTC)
