"""Abandoned authentications are cancelled; orders waiting for a provider get charged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orderguard.bootstrap import new_worker, wire
from orderguard.domain.states import OrderState
from orderguard.providers.base import ProviderUnavailable
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory import InMemoryProvider
from orderguard.services.expiry import ABANDONED, expire_abandoned
from orderguard.services.payments import WAITING_NOTE
from orderguard.services.waiting import charge_waiting
from tests.conftest import open_storage
from tests.factories import new_order
from tests.integration.conftest import Api, api_settings, memory_providers
from tests.integration.test_payments_api import THREE_DS, VISA, charges, place, timeline


async def test_an_abandoned_authentication_is_cancelled_after_its_time(api: Api) -> None:
    order = await place(api, THREE_DS)
    storage, recheck = api.container.storage, api.container.recheck
    payments = api.container.payments
    assert await expire_abandoned(storage, payments, recheck, after=timedelta(minutes=30)) == 0
    assert await expire_abandoned(storage, payments, recheck, after=timedelta(0)) == 1
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "cancelled"
    assert detail["payment_attempts"][0]["state"] == "failed"
    assert detail["payment_attempts"][0]["decline_code"] == ABANDONED
    assert detail["timeline"][-1]["cause"] == "janitor"


async def test_an_authentication_finished_late_is_paid_not_cancelled(api: Api) -> None:
    order = await place(api, THREE_DS)
    api.provider.complete_action(order["payment_attempts"][0]["provider_ref"], approved=True)
    storage, recheck = api.container.storage, api.container.recheck
    payments = api.container.payments
    assert await expire_abandoned(storage, payments, recheck, after=timedelta(0)) == 0
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "paid"


async def test_an_order_waits_in_received_while_every_circuit_is_open_then_is_charged(
    api: Api,
) -> None:
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    order = await place(api, VISA)
    assert (order["state"], order["payment_attempts"]) == ("received", [])
    assert WAITING_NOTE in [n for _, _, n in await timeline(api, order["id"])]
    assert await charge_waiting(api.container.storage, api.container.payments) == 0
    breaker.record_success()  # the provider is back
    await new_worker(api.container).round()
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "paid"
    assert detail["timeline"][-1]["cause"] == "janitor"
    assert len(charges(api.provider, order["id"])) == 1
    assert await charge_waiting(api.container.storage, api.container.payments) == 0


async def test_a_waiting_order_can_be_paid_by_the_shopper_with_another_method(api: Api) -> None:
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    order = await place(api, VISA)
    breaker.record_success()
    api.provider.fail_next(ProviderUnavailable("refused"))
    from tests.factories import key

    again = await api.client.post(
        f"/v1/orders/{order['id']}/payments", json={"payment": {"method": VISA}}, headers=key()
    )
    assert again.json()["state"] == "payment_pending"
    assert await charge_waiting(api.container.storage, api.container.payments) == 0


async def test_an_expired_authentication_is_cancelled_at_the_provider_so_it_cannot_charge(
    api: Api,
) -> None:
    order = await place(api, THREE_DS)
    c = api.container
    assert await expire_abandoned(c.storage, c.payments, c.recheck, after=timedelta(0)) == 1
    ref = order["payment_attempts"][0]["provider_ref"]
    api.provider.complete_action(ref, approved=True)  # the shopper comes back too late
    assert charges(api.provider, order["id"]) == []
    assert (await api.provider.retrieve_payment(ref)).outcome.value == "failed"


async def test_a_provider_that_cannot_cancel_now_leaves_the_order_for_the_next_round(
    api: Api,
) -> None:
    order = await place(api, THREE_DS)
    c = api.container
    api.provider.fail_next(ProviderUnavailable("refused"))  # the recheck's retrieve
    api.provider.fail_next(ProviderUnavailable("refused"))  # the cancel
    assert await expire_abandoned(c.storage, c.payments, c.recheck, after=timedelta(0)) == 0
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "action_required"
    assert await expire_abandoned(c.storage, c.payments, c.recheck, after=timedelta(0)) == 1


class Ticks:
    """A breaker clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def half_open_after_outage(api: Api) -> Ticks:
    """Give the primary a breaker on a clock of the test's own, and open it."""
    ticks = Ticks()
    slot = api.container.payments.providers.primary
    slot.breaker = CircuitBreaker(failure_threshold=3, cool_down_s=30.0, clock=ticks)
    for _ in range(slot.breaker.failure_threshold):
        slot.breaker.record_failure()
    return ticks


async def test_a_backlog_of_waiting_orders_drains_in_one_duty_call_when_the_provider_returns(
    api: Api,
) -> None:
    ticks = half_open_after_outage(api)
    placed = [await place(api, VISA) for _ in range(250)]
    assert {order["state"] for order in placed} == {"received"}
    c = api.container
    assert await charge_waiting(c.storage, c.payments) == 0  # still cooling down
    ticks.now += 30.0  # the cool-down is over: the next call is the circuit's trial

    sent = await charge_waiting(c.storage, c.payments, limit=100, concurrency=8)

    assert sent == 250  # not one trial, not one batch of 100: the whole backlog
    async with c.storage() as uow:
        assert await uow.orders.waiting_for_payment(1) == []
        orders = [await uow.orders.get(order["id"]) for order in placed]
    assert {order.state for order in orders if order} == {OrderState.PAID}
    assert all(len(charges(api.provider, order["id"])) == 1 for order in placed)
    assert await charge_waiting(c.storage, c.payments) == 0


async def test_one_worker_round_pays_every_order_that_waited_not_just_a_batch(api: Api) -> None:
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    placed = [await place(api, VISA) for _ in range(130)]
    breaker.record_success()  # the provider is back

    await new_worker(api.container).round()

    for order in placed:
        detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
        assert detail["state"] == "paid"
        assert len(charges(api.provider, order["id"])) == 1


async def test_while_the_circuit_stays_open_the_backlog_keeps_waiting_untouched(
    api: Api,
) -> None:
    half_open_after_outage(api)
    placed = [await place(api, VISA) for _ in range(3)]
    c = api.container

    assert await charge_waiting(c.storage, c.payments) == 0

    for order in placed:
        detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
        assert (detail["state"], detail["payment_attempts"]) == ("received", [])
        notes = [e["note"] for e in detail["timeline"] if e["kind"] == "note"]
        assert notes == [WAITING_NOTE]  # the worker's looks left no trace
    assert api.provider.payments == {}


async def test_a_trial_that_fails_leaves_the_rest_of_the_backlog_waiting(api: Api) -> None:
    ticks = half_open_after_outage(api)
    placed = [await place(api, VISA) for _ in range(5)]
    ticks.now += 30.0
    api.provider.fail_next(ProviderUnavailable("refused"))  # the provider is not back yet
    c = api.container

    assert await charge_waiting(c.storage, c.payments) == 1  # the trial, re-sent later

    states = [(await api.client.get(f"/v1/orders/{o['id']}")).json()["state"] for o in placed]
    assert states == ["payment_pending"] + ["received"] * 4
    assert api.provider.payments == {}


async def test_workers_draining_one_backlog_side_by_side_charge_each_order_once(
    pg_url: str,
) -> None:
    providers = memory_providers()
    stores = [await open_storage(pg_url) for _ in range(3)]
    try:
        waiting = [new_order() for _ in range(120)]
        async with stores[0]() as uow:
            for order in waiting:
                order.payment_method = VISA
                await uow.orders.add(order)
            await uow.commit()
        workers = [wire(api_settings(), store, providers) for store in stores]

        sent = await asyncio.gather(
            *(charge_waiting(w.storage, w.payments, limit=20, concurrency=4) for w in workers)
        )

        assert sum(sent) == len(waiting)
        async with stores[0]() as uow:
            orders = [await uow.orders.get(order.id) for order in waiting]
        assert {order.state for order in orders if order} == {OrderState.PAID}
        assert [len(order.attempts) for order in orders if order] == [1] * len(waiting)
        provider = providers.primary.provider
        assert isinstance(provider, InMemoryProvider)
        assert all(len(charges(provider, order.id)) == 1 for order in waiting)
    finally:
        for store in stores:
            await store.close()
