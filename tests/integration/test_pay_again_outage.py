"""A declined shopper who pays again while every provider's circuit is open is told to try
again later, and nothing is kept to be charged behind their back; the same request once a
provider is back pays the order (SQLite and PostgreSQL).

Before this, the pay-again was answered ``201`` with the order still ``payment_failed`` and
the new method stored as "payment waiting"; the waiting queue charges only orders in
``received``, so that payment was never made (found by the demo's ``shoppers_misled``).
"""

from __future__ import annotations

from orderguard.bootstrap import new_worker
from orderguard.services.payments import WAITING_NOTE
from orderguard.services.waiting import charge_waiting
from tests.factories import key
from tests.integration.conftest import Api
from tests.integration.test_payments_api import DECLINED, VISA, charges, place, timeline


async def test_a_pay_again_during_an_outage_is_refused_for_now_then_paid_when_sent_again(
    api: Api,
) -> None:
    order = await place(api, DECLINED)
    assert order["state"] == "payment_failed"
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    path, headers = f"/v1/orders/{order['id']}/payments", key()

    refused = await api.client.post(path, json={"payment": {"method": VISA}}, headers=headers)

    # the shopper is told the truth: nothing was done, try again later
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["type"].endswith("/provider-unavailable")
    # and nothing was kept to be charged later: no method waiting, no attempt, no note
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "payment_failed"
    assert len(detail["payment_attempts"]) == 1
    assert WAITING_NOTE not in [note for _, _, note in await timeline(api, order["id"])]

    breaker.record_success()  # the provider is back
    # the waiting duty has nothing of this order to charge: the shopper did not agree to it
    assert await charge_waiting(api.container.storage, api.container.payments) == 0
    await new_worker(api.container).round()
    still = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert (still["state"], len(still["payment_attempts"])) == ("payment_failed", 1)
    assert charges(api.provider, order["id"]) == []

    # the shopper's browser sends the same request again (same key): it is charged now
    again = await api.client.post(path, json={"payment": {"method": VISA}}, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["state"] == "paid"
    assert len(charges(api.provider, order["id"])) == 1
    # and a third time it is the same answer, not a second charge
    replay = await api.client.post(path, json={"payment": {"method": VISA}}, headers=headers)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (201, "true")
    assert len(charges(api.provider, order["id"])) == 1


async def test_a_waiting_order_paid_again_during_an_outage_still_waits_to_be_charged(
    api: Api,
) -> None:
    """An order never tried (received, waiting) keeps waiting when its shopper pays again
    during the outage: its first answer already told them so, and the queue charges it."""
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    order = await place(api, VISA)
    assert (order["state"], order["payment_attempts"]) == ("received", [])
    again = await api.client.post(
        f"/v1/orders/{order['id']}/payments", json={"payment": {"method": VISA}}, headers=key()
    )
    assert (again.status_code, again.json()["state"]) == (201, "received")
    breaker.record_success()
    await new_worker(api.container).round()
    detail = (await api.client.get(f"/v1/orders/{order['id']}")).json()
    assert detail["state"] == "paid"
    assert len(charges(api.provider, order["id"])) == 1
