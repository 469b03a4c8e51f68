"""Orders for the reconciliation tests: the scenario every fixture report describes.

Orders A-G are paid (at PAID_AT) through ``provider`` with references given per format:
A is confirmed as it is, B for a different amount, C in another currency, D twice, E not at
all, F under another reference but with its order id or merchant reference, G under an
unknown reference (matched by amount and date). X is a charge with no order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, OrderLine, PaymentAttempt
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.reconcile import categories as c
from orderguard.reconcile.engine import Engine, EngineOptions
from orderguard.reconcile.export import export_orders
from orderguard.reconcile.outcome import Outcome as RunOutcome
from orderguard.reconcile.outcome import Result
from orderguard.reconcile.run import Request, reconcile
from orderguard.reconcile.sources import open_source
from orderguard.storage.ports import UnitOfWorkFactory
from tests.factories import customer

PAID_AT = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
#: Letter -> amount in minor units.
AMOUNTS = {"A": 2500, "B": 1000, "C": 1200, "D": 3000, "E": 4000, "F": 5000, "G": 1550}


def paid_order(
    letter: str,
    *,
    provider_ref: str,
    currency: str = "EUR",
    provider: str = "stripe",
    amount: int | None = None,
    at: datetime = PAID_AT,
) -> Order:
    """Order ``ord_<letter>`` (merchant reference ``M-<letter>``), paid by one charge."""
    total = AMOUNTS[letter] if amount is None else amount
    order = Order.place(
        currency=currency,
        lines=[OrderLine("SKU-" + letter, "Item " + letter, 1, total)],
        customer=customer(),
        at=at,
        merchant_reference=f"M-{letter}",
        order_id=f"ord_{letter}",
    )
    attempt = PaymentAttempt(
        id=f"pay_{letter}",
        order_id=order.id,
        seq=1,
        provider=provider,
        method="card",
        amount=total,
        currency=currency,
        idempotency_key=f"orderguard-pay_{letter}",
        created_at=at,
        updated_at=at,
    )
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=at)
    outcome = Outcome(
        AttemptState.SUCCEEDED, provider_ref=provider_ref, amount=total, currency=currency
    )
    apply_outcome(order, attempt, outcome, cause=Cause.API, at=at)
    return order


async def seed(
    storage: UnitOfWorkFactory,
    ref: Callable[[str], str],
    *,
    currency: str = "EUR",
    provider: str = "stripe",
) -> None:
    """Store orders A-G paid with references ``ref(letter)`` (C is always in EUR)."""
    async with storage() as uow:
        for letter in AMOUNTS:
            cur = "EUR" if letter == "C" else currency
            await uow.orders.add(
                paid_order(letter, provider_ref=ref(letter), currency=cur, provider=provider)
            )
        await uow.commit()


#: What each fixture report is expected to say about the scenario.
EXPECTED = {
    "matched": 4,
    "amount_mismatch": 1,
    "currency_mismatch": 1,
    "duplicate": 1,
    "missing_at_provider": 1,
    "missing_in_orders": 1,
    "refund": 1,
}


def results(engine: Engine) -> list[Result]:
    return [r for batch in engine.results(frozenset(c.ALL)) for r in batch]


async def scoped(
    storage: UnitOfWorkFactory, report: Path, work: Path
) -> tuple[list[Result], RunOutcome]:
    work.mkdir()
    request = Request([report], options=EngineOptions(provider="stripe"), formats=FORMATS)
    engine, outcome = await reconcile(storage, request, work)
    try:
        return results(engine), outcome
    finally:
        engine.close()


async def full_read(storage: UnitOfWorkFactory, report: Path, work: Path) -> list[Result]:
    """The same report matched against every order and attempt (the former export)."""
    work.mkdir()
    orders, attempts = work / "orders.csv", work / "attempts.csv"
    await export_orders(storage, orders, attempts)
    engine = Engine(work, EngineOptions(provider="stripe"))
    try:
        engine.load_orders(orders, attempts)
        engine.load_report(open_source(report, formats=FORMATS))
        engine.match()
        return results(engine)
    finally:
        engine.close()
