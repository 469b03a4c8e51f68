"""The engine on hand-written exports: edge cases the fixtures do not reach."""

from __future__ import annotations

from pathlib import Path

from orderguard.reconcile.engine import Engine
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
        engine.load_report(open_source(FIXTURES / "stripe_itemized.csv"))
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
        engine.load_report(open_source(FIXTURES / "stripe_itemized.csv"))
        engine.load_report(open_source(FIXTURES / "paypal_stl.csv"))
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
        engine.load_report(open_source(header))
        outcome = engine.match()
    finally:
        engine.close()
    assert (outcome.lines, outcome.errors, outcome.period_from) == (0, [], None)
    assert sum(outcome.counts.values()) == 0
