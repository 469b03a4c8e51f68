"""The sweep against the real sandbox over HTTP, with its ledger as the oracle (G3, G4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orderguard.domain.ids import new_id
from orderguard.domain.order import Order
from orderguard.providers.base import ChargeRequest
from orderguard.services.snapshot import snapshot_metadata
from tests.e2e.payment_harness import VISA, Sandbox, Shop, open_shop, sandbox
from tests.factories import new_order

WINDOW = timedelta(hours=1)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box: Sandbox) -> AsyncIterator[Shop]:
    async with open_shop(database_url, [box]) as running:
        yield running


async def charge_directly(shop: Shop, order: Order) -> str:
    """Charge the sandbox for ``order`` behind orderguard's back, snapshot included."""
    attempt_id = new_id("pay")
    result = await shop.slot("sandbox").provider.create_payment(
        ChargeRequest(
            attempt_id=attempt_id,
            order_id=order.id,
            amount=order.total.amount,
            currency=order.currency,
            method=VISA,
            return_url=f"{shop.base_url}/return",
            idempotency_key=f"e2e-{attempt_id}",
            metadata=snapshot_metadata(order, attempt_id),
        )
    )
    assert result.provider_ref is not None
    return result.provider_ref


async def test_an_orphan_charge_at_the_sandbox_is_recovered_as_a_paid_order(
    shop: Shop, box: Sandbox
) -> None:
    lost = new_order(reference="E2E-LOST")
    ref = await charge_directly(shop, lost)
    assert lost.id not in await shop.order_ids()
    report = await shop.container.sweeper.sweep_last(WINDOW)
    assert (report.charges_seen, report.orphans_recovered) == (1, 1)
    order = await shop.order(lost.id)
    assert (order["state"], order["merchant_reference"]) == ("paid", "E2E-LOST")
    assert order["payment_attempts"][0]["provider_ref"] == ref
    [ledger_charge] = await box.charges(lost.id)
    assert (ledger_charge["payment_intent"], ledger_charge["amount"]) == (ref, lost.total.amount)
    assert (await box.ledger())["refunds"] == []


async def test_a_duplicate_charge_at_the_sandbox_is_refunded_once(shop: Shop, box: Sandbox) -> None:
    placed = await shop.placed()
    assert placed.answer["state"] == "paid"
    async with shop.container.storage() as uow:
        order = await uow.orders.get(placed.id)
    assert order is not None
    second = await charge_directly(shop, order)
    assert len(await box.charges(placed.id)) == 2
    first = await shop.container.sweeper.sweep_last(WINDOW)
    again = await shop.container.sweeper.sweep_last(WINDOW)
    assert (first.duplicates_refunded, again.duplicates_refunded, again.already_known) == (1, 0, 1)
    refunds = (await box.ledger())["refunds"]
    assert [(r["payment_intent"], r["amount"]) for r in refunds] == [(second, order.total.amount)]
    detail = await shop.order(placed.id)
    assert detail["state"] == "paid"
    assert detail["timeline"][-1]["note"].startswith(f"duplicate charge: {second}")
