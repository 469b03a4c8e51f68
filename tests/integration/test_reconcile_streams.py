"""The scope of a reconciliation run on PostgreSQL is streamed by two statements side by side
(the period's payments and their orders; the rest): together they write exactly the rows
the scope's rules name, each once, with a period and a window, a period alone or neither,
through one provider or all, side by side or one after the other (a pool of one).

The expected rows are worked out here from the rules of :class:`~orderguard.reconcile.
outcome.Scope`, over a shop built to make the two statements meet: payments named by a
line and paid in the period, wallet references that are another line's reference, window
payments of an order named both ways, an order reference that is the id of an order read
already, a merchant reference equal to another order's id.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from orderguard.storage.connect import connect
from orderguard.storage.ports import LineRefs
from orderguard.storage.unit_of_work import SqlStorage

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
PERIOD = (T0 - timedelta(days=1), T0 + timedelta(days=1))
WINDOW = (T0 - timedelta(days=5), T0 + timedelta(days=5))
PAID = {"succeeded", "refunded"}


@dataclass(frozen=True)
class Attempt:
    id: str
    order: str
    provider: str
    state: str
    ref: str | None
    at: datetime


#: Orders: id -> merchant reference.
ORDERS = {
    "o_p1": "M-p1", "o_p2": "M-p2", "o_old1": None, "o_w": "M-w", "o_k": "M-k",
    "o_l": "M-l", "o_x": "M-x", "o_dual": "o_k", "o_y": None, "o_z": None, "o_u": None,
    "o_v": None, "o_placed": None,
}  # fmt: skip
D = timedelta(days=1)
ATTEMPTS = [
    Attempt("a_p1", "o_p1", "stripe", "succeeded", "pi_p1", T0),
    Attempt("a_p1b", "o_p1", "stripe", "succeeded", "pi_p1b", T0 - 3 * D),
    Attempt("a_p1n", "o_p1", "stripe", "succeeded", None, T0 - 2 * D),
    Attempt("a_p2", "o_p2", "adyen", "succeeded", "pi_p2", T0),
    Attempt("a_old1", "o_old1", "stripe", "succeeded", "pi_old1", T0 - 300 * D),
    Attempt("a_old1w", "o_old1", "stripe", "succeeded", "pi_old1w", T0 - 3 * D),
    Attempt("a_w", "o_w", "alipay", "succeeded", "out_w", T0 - 200 * D),
    Attempt("a_w2", "o_w", "alipay", "succeeded", "out_w2", T0 + 3 * D),
    Attempt("a_x", "o_x", "stripe", "failed", "out_x", T0 - 100 * D),
    Attempt("a_y", "o_y", "stripe", "succeeded", "pi_y", T0 + timedelta(hours=1)),
    Attempt("a_z", "o_z", "stripe", "refunded", "pi_z", T0 - 2 * D),
    Attempt("a_u", "o_u", "stripe", "succeeded", "pi_u", T0),
    Attempt("a_u2", "o_u", "stripe", "succeeded", "pi_u2", T0 - 3 * D),
    Attempt("a_u3", "o_u", "stripe", "refunded", None, T0 + 3 * D),
    Attempt("a_u4", "o_u", "stripe", "succeeded", "pi_u4", T0 + 2 * D),
    Attempt("a_u5", "o_u", "stripe", "succeeded", "out_u5", T0 - 2 * D),
    Attempt("a_u6", "o_u", "adyen", "succeeded", "pi_u6", T0 - 2 * D),
    Attempt("a_u7", "o_u", "stripe", "succeeded", "pi_u7", T0 - 30 * D),
    Attempt("a_v", "o_v", "stripe", "succeeded", "out_v", T0 - 50 * D),
    Attempt("a_v2", "o_v", "stripe", "succeeded", "pi_v2", T0 + 4 * D),
    # Paid in the period, placed a month before (its order is looked up by key).
    Attempt("a_placed", "o_placed", "stripe", "succeeded", "pi_placed", T0),
]
#: When each order was placed (the others: when first paid).
PLACED = {"o_placed": T0 - 30 * D, "o_k": T0 - 400 * D, "o_l": T0 - 400 * D,
          "o_dual": T0 - 400 * D}  # fmt: skip
#: The report's lines: (reference, order reference, usable charge).
LINES: list[tuple[str | None, str | None, bool]] = [
    ("pi_u4", None, False),
    ("nothing6", "out_u5", True),  # a wallet reference of an order paid in the period
    ("nothing7", "out_v", False),
    ("pi_u2", "out_v", False),  # its reference found: its order reference not looked up
    ("pi_p1", None, True),
    ("pi_old1", "o_old1", True),
    ("nothing1", "out_w", True),  # a wallet's out_trade_no
    ("pi_z", "out_x", False),
    ("nothing2", "o_k", True),  # an order id (o_dual's merchant reference too)
    ("nothing3", "M-l", True),  # a merchant reference
    (None, "pi_y", True),  # the reference of a payment of the period, as order reference
    ("nothing4", "o_p1", True),  # the id of an order read already
    ("pi_p2", None, False),
    ("nothing5", "pi_old1", True),  # another line's reference
    ("pi_placed", None, True),
]


def expected(
    provider: str | None, period: bool, window: bool
) -> tuple[set[tuple[str, ...]], set[str]]:
    """The attempts (order, provider, reference, state) and order ids the scope's rules
    name."""

    def through(a: Attempt) -> bool:
        return provider is None or a.provider == provider

    def paid_between(a: Attempt, span: tuple[datetime, datetime]) -> bool:
        return a.state in PAID and span[0] <= a.at <= span[1] and through(a)

    in_period = {a for a in ATTEMPTS if period and paid_between(a, PERIOD)}
    refs = {ref for ref, _, _ in LINES if ref is not None}
    named = {a for a in ATTEMPTS if a.ref in refs}
    found = {a.ref for a in ATTEMPTS}
    unmatched = {o for ref, o, _ in LINES if o is not None and (ref is None or ref not in found)}
    wallet = {a for a in ATTEMPTS if a.ref in unmatched}
    read = in_period | named | wallet
    if window:
        claimed = {ref for ref, _, charge in LINES if charge and ref is not None}
        open_orders = {a.order for a in read if a.ref is None or a.ref not in claimed}
        read |= {a for a in ATTEMPTS if a.order in open_orders and paid_between(a, WINDOW)}
    orders = {a.order for a in read} | (unmatched & set(ORDERS))
    orders |= {o for o, m in ORDERS.items() if m in unmatched and m not in ORDERS}
    return {(a.order, a.provider, a.ref or "", a.state) for a in read}, orders


@pytest.fixture
async def shop(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for order, reference in ORDERS.items():
            first = min((a.at for a in ATTEMPTS if a.order == order), default=T0)
            conn.execute(
                "INSERT INTO orders (id, merchant_reference, state, currency, amount_total, "
                "customer_email, customer_name, ship_line1, ship_city, ship_postal_code, "
                "ship_country, locale, status_token, version, created_at, updated_at) VALUES "
                "(%s, %s, 'paid', 'EUR', 100, 'e@example.com', 'N', 'L', 'C', 'P', 'FR', "
                "'fr', %s, 1, %s, %s)",
                (order, reference, f"t-{order}", PLACED.get(order, first), T0),
            )
        for seq, a in enumerate(ATTEMPTS, 1):
            conn.execute(
                "INSERT INTO payment_attempts (id, order_id, seq, provider, method, state, "
                "amount, currency, idempotency_key, provider_ref, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, 'card', %s, 100, 'EUR', %s, %s, %s, %s)",
                (a.id, a.order, seq, a.provider, a.state, f"k-{a.id}", a.ref, a.at, a.at),
            )
    return pg_url


def read_rows(path: Path, width: int) -> list[tuple[str, ...]]:
    with path.open(newline="") as source:
        rows = list(csv.reader(source))[1:]
    return [tuple(r[:width]) for r in rows]


@pytest.mark.parametrize("pool_size", [3, 1])
@pytest.mark.parametrize("provider", ["stripe", None])
@pytest.mark.parametrize("variant", ["window", "period", "neither"])
async def test_the_two_statements_write_what_the_scope_names_each_row_once(
    shop: str, tmp_path: Path, pool_size: int, provider: str | None, variant: str
) -> None:
    period, window = variant != "neither", variant == "window"
    lines = LineRefs(
        refs=json.dumps([ref for ref, _, _ in LINES]),
        order_refs=json.dumps([order for _, order, _ in LINES]),
        charges=json.dumps([charge for _, _, charge in LINES]),
    )
    db = await connect(shop, pool_size=pool_size)
    try:
        async with SqlStorage(db).reader() as uow:
            written = await uow.reconciliations.copy_scope(
                tmp_path / "orders.csv",
                tmp_path / "attempts.csv",
                paid_from=PERIOD[0] if period else None,
                paid_to=PERIOD[1] if period else None,
                provider=provider,
                lines=lines,
                window_from=WINDOW[0] if window else None,
                window_to=WINDOW[1] if window else None,
            )
    finally:
        await db.close()
    attempts, orders = expected(provider, period, window)
    got_attempts = read_rows(tmp_path / "attempts.csv", 4)
    got_orders = [row[0] for row in read_rows(tmp_path / "orders.csv", 1)]
    assert sorted(got_attempts) == sorted(attempts)  # each once: a list against a set
    assert sorted(got_orders) == sorted(orders)
    assert written == (len(orders), len(attempts))
