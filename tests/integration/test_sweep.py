"""The orphan and duplicate-charge sweep (G3, G4, G7) with the in-memory provider as oracle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orderguard.domain.ids import new_id
from orderguard.domain.order import Order
from orderguard.providers.base import ChargeRequest
from orderguard.services.snapshot import snapshot_metadata
from orderguard.services.sweep import Sweeper
from tests.factories import new_order
from tests.integration.conftest import Api
from tests.integration.test_payments_api import VISA, place

WINDOW = timedelta(hours=1)


async def charge(
    api: Api, order: Order, *, snapshot: bool = True, amount: int | None = None
) -> str:
    """Charge the provider directly for ``order``, as a lost or doubled payment would."""
    attempt_id = new_id("pay")
    metadata = (
        snapshot_metadata(order, attempt_id)
        if snapshot
        else {"order_id": order.id, "attempt_id": attempt_id}
    )
    result = await api.provider.create_payment(
        ChargeRequest(
            attempt_id=attempt_id,
            order_id=order.id,
            amount=order.total.amount if amount is None else amount,
            currency=order.currency,
            method=VISA,
            return_url="https://shop.example/return",
            idempotency_key=f"test-{attempt_id}",
            metadata=metadata,
        )
    )
    assert result.provider_ref is not None
    return result.provider_ref


async def stored(api: Api, order_id: str) -> Order:
    async with api.container.storage() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    return order


async def detail(api: Api, order_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def findings(api: Api) -> list[tuple[str, str, str, str | None]]:
    async with api.container.storage() as uow:
        return [
            (f.kind, f.provider_ref, f.resolution, f.order_id) for f in await uow.findings.all()
        ]


def refunded(api: Api) -> list[tuple[str, int]]:
    return [(r.provider_ref, r.amount) for r in api.provider.refunds]


async def test_an_orphan_charge_with_a_snapshot_brings_its_order_back_paid(api: Api) -> None:
    lost = new_order(reference="LOST-1")  # charged, then never stored
    ref = await charge(api, lost)
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.charges_seen, report.orphans_recovered, report.orphans_refunded) == (1, 1, 0)
    order = await detail(api, lost.id)
    assert (order["state"], order["merchant_reference"], order["amount_total"]) == (
        "paid",
        "LOST-1",
        lost.total.amount,
    )
    assert [(i["sku"], i["quantity"]) for i in order["items"]] == [("TEE-M", 2), ("MUG", 1)]
    assert order["customer"]["email"] == lost.customer.email
    assert order["created_at"].startswith(lost.created_at.isoformat()[:19])
    [attempt] = order["payment_attempts"]
    assert (attempt["state"], attempt["provider_ref"], attempt["provider"]) == (
        "succeeded",
        ref,
        "memory",
    )
    assert [(e["from_state"], e["to_state"], e["cause"]) for e in order["timeline"]] == [
        (None, "received", "sweep"),
        ("received", "payment_pending", "sweep"),
        ("payment_pending", "paid", "sweep"),
    ]
    assert f"recovered from the provider's charge {ref}" in order["timeline"][1]["note"]
    assert await findings(api) == [("orphan", ref, "recovered", lost.id)]
    assert refunded(api) == []


async def test_an_orphan_without_a_snapshot_is_refunded_and_recorded(api: Api) -> None:
    lost = new_order()
    ref = await charge(api, lost, snapshot=False)
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.orphans_recovered, report.orphans_refunded) == (0, 1)
    assert refunded(api) == [(ref, lost.total.amount)]
    assert await findings(api) == [("orphan", ref, "refunded", lost.id)]
    assert (await api.client.get(f"/v1/orders/{lost.id}")).status_code == 404


async def test_an_orphan_whose_snapshot_disagrees_with_the_charge_is_refunded(api: Api) -> None:
    lost = new_order()
    ref = await charge(api, lost, amount=lost.total.amount + 1)
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.orphans_recovered, report.orphans_refunded) == (0, 1)
    assert refunded(api) == [(ref, lost.total.amount + 1)]
    assert (await api.client.get(f"/v1/orders/{lost.id}")).status_code == 404


async def test_with_refunds_off_an_orphan_is_recorded_for_review_not_refunded(api: Api) -> None:
    sweeper = Sweeper(api.container.storage, api.container.payments, auto_refund=False)
    lost = new_order()
    ref = await charge(api, lost, snapshot=False)
    report = await sweeper.sweep_last(WINDOW)
    assert (report.orphans_refunded, report.flagged) == (0, 1)
    assert refunded(api) == []
    assert await findings(api) == [("orphan", ref, "review", None)]


async def test_a_second_charge_for_a_paid_order_is_refunded_and_the_order_stays_paid(
    api: Api,
) -> None:
    placed = await place(api)
    first = placed["payment_attempts"][0]["provider_ref"]
    second = await charge(api, await stored(api, placed["id"]))
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.charges_seen, report.duplicates_refunded) == (2, 1)
    assert refunded(api) == [(second, placed["amount_total"])]
    order = await detail(api, placed["id"])
    assert order["state"] == "paid" and order["flag_reason"] is None
    assert [a["provider_ref"] for a in order["payment_attempts"]] == [first]
    last = order["timeline"][-1]
    assert (last["kind"], last["cause"]) == ("note", "sweep")
    assert last["note"].startswith(f"duplicate charge: {second} at memory")
    assert await findings(api) == [("duplicate", second, "refunded", placed["id"])]


async def test_with_refunds_off_a_second_charge_flags_the_order_for_review(api: Api) -> None:
    sweeper = Sweeper(api.container.storage, api.container.payments, auto_refund=False)
    placed = await place(api)
    second = await charge(api, await stored(api, placed["id"]))
    report = await sweeper.sweep_last(WINDOW)
    assert (report.duplicates_refunded, report.flagged) == (0, 1)
    assert refunded(api) == []
    order = await detail(api, placed["id"])
    assert order["state"] == "paid"
    assert order["flag_reason"].startswith(f"duplicate charge: {second}")
    assert order["timeline"][-1]["kind"] == "flagged"
    assert await findings(api) == [("duplicate", second, "flagged", placed["id"])]


async def test_a_second_sweep_over_the_same_window_changes_nothing(api: Api) -> None:
    paid = await place(api)
    duplicate = await charge(api, await stored(api, paid["id"]))
    lost, unrecoverable = new_order(), new_order()
    await charge(api, lost)
    await charge(api, unrecoverable, snapshot=False)
    first = await api.container.sweeper.sweep_last(WINDOW)
    assert (first.orphans_recovered, first.orphans_refunded, first.duplicates_refunded) == (1, 1, 1)
    before = (await findings(api), refunded(api), await detail(api, paid["id"]))
    recovered_before = await detail(api, lost.id)
    again = await api.container.sweeper.sweep_last(WINDOW)
    assert (again.charges_seen, again.already_known) == (4, 2)
    assert (again.orphans_recovered, again.orphans_refunded, again.duplicates_refunded) == (0, 0, 0)
    assert (await findings(api), refunded(api), await detail(api, paid["id"])) == before
    assert await detail(api, lost.id) == recovered_before
    assert duplicate in {ref for ref, _ in refunded(api)}


async def test_a_charge_for_a_cancelled_order_is_refunded_and_noted(api: Api) -> None:
    placed = await place(api, method=None)
    cancelled = await api.client.post(f"/v1/orders/{placed['id']}/cancel", json={})
    assert cancelled.json()["state"] == "cancelled"
    ref = await charge(api, await stored(api, placed["id"]))
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert report.duplicates_refunded == 1
    assert refunded(api) == [(ref, placed["amount_total"])]
    order = await detail(api, placed["id"])
    assert order["state"] == "cancelled"
    assert order["timeline"][-1]["note"].startswith(f"charged after cancellation: {ref}")
    assert await findings(api) == [("after_cancel", ref, "refunded", placed["id"])]


async def test_a_charge_for_an_attempt_an_unpaid_order_does_not_know_is_flagged(
    api: Api,
) -> None:
    placed = await place(api, method=None)
    ref = await charge(api, await stored(api, placed["id"]))
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.flagged, report.duplicates_refunded) == (1, 0)
    assert refunded(api) == []  # it may be the order's only payment: a person decides
    order = await detail(api, placed["id"])
    assert order["flag_reason"].startswith(f"unexplained charge: {ref}")
    assert order["state"] == "received"


async def test_the_charge_that_paid_an_order_is_not_a_finding(api: Api) -> None:
    placed = await place(api)  # paid: its one charge is its own
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.charges_seen, report.flagged, report.duplicates_refunded) == (1, 0, 0)
    assert await findings(api) == []
    assert (await detail(api, placed["id"]))["timeline"][-1]["to_state"] == "paid"


async def test_an_orphan_charged_twice_comes_back_once_and_its_second_charge_is_refunded(
    api: Api,
) -> None:
    lost = new_order(reference="LOST-2")
    first = await charge(api, lost)
    second = await charge(api, lost)
    report = await api.container.sweeper.sweep_last(WINDOW)
    assert (report.orphans_recovered, report.errors) == (1, 0)
    order = await detail(api, lost.id)
    assert order["state"] == "paid"
    [attempt] = order["payment_attempts"]
    keeper = attempt["provider_ref"]
    assert keeper in {first, second}
    extra = second if keeper == first else first
    assert refunded(api) == [(extra, lost.total.amount)]
    assert sorted(k for k, *_ in await findings(api)) == ["duplicate", "orphan"]
