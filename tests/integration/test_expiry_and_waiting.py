"""Abandoned authentications are cancelled; orders waiting for a provider get charged."""

from __future__ import annotations

from datetime import timedelta

from orderguard.providers.base import ProviderUnavailable
from orderguard.services.expiry import ABANDONED, expire_abandoned
from orderguard.services.payments import WAITING_NOTE
from orderguard.services.waiting import charge_waiting
from orderguard.worker import Worker
from tests.integration.conftest import Api
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
    await Worker(api.container).round()
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
