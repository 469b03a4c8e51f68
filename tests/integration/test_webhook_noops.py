"""Webhooks that change nothing are stored processed on arrival (issue 20), on SQLite and
PostgreSQL; the others are still applied, and recorded processed with their settling.

A paid order's provider sends events that only repeat what the charge's own answer said
(``payment_intent.succeeded``) or that nobody acts on (``charge.succeeded``): each is still
verified, stored once (a replay is a duplicate) and recorded processed, but nothing is left
to apply and the order is not touched.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orderguard.domain.states import AttemptState
from orderguard.providers.base import PaymentOutcome
from orderguard.services.inbound_webhooks import TRUST_HANDED, WebhookInbox
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.ports import WebhookRecord
from tests.integration.conftest import Api
from tests.integration.test_payments_api import THREE_DS, VISA, place
from tests.integration.test_webhooks import by_webhook, deliver, detail, inbox, payment_of


async def _version(api: Api, order_id: str) -> int:
    async with api.container.storage() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    return order.version


async def test_a_success_the_order_already_has_is_stored_processed_and_changes_nothing(
    api: Api,
) -> None:
    order = await place(api, VISA)
    assert order["state"] == "paid"
    version = await _version(api, order["id"])
    webhook = api.provider.signed_webhook(
        "payment_intent.succeeded", payment=payment_of(api, order)
    )
    response = await deliver(api, webhook)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    [record] = await inbox(api)
    assert (record.type, record.order_id, record.attempts, record.last_error) == (
        "payment_intent.succeeded",
        order["id"],
        1,
        None,
    )
    assert record.processed_at is not None and record.next_attempt_at is None
    assert await _version(api, order["id"]) == version  # the order was not written
    assert by_webhook(await detail(api, order["id"])) == []
    again = await deliver(api, webhook)  # a replay is still a duplicate
    assert again.json() == {"received": True, "duplicate": True}
    assert len(await inbox(api)) == 1


async def test_an_event_nobody_acts_on_is_stored_processed_for_no_order(api: Api) -> None:
    order = await place(api, VISA)
    webhook = api.provider.signed_webhook("charge.succeeded")
    assert (await deliver(api, webhook)).status_code == 200
    [record] = await inbox(api)
    assert (record.type, record.order_id, record.attempts) == ("charge.succeeded", None, 1)
    assert record.processed_at is not None and record.next_attempt_at is None
    assert by_webhook(await detail(api, order["id"])) == []


async def test_a_stale_pending_snapshot_is_still_noted_and_recorded_processed(api: Api) -> None:
    """Not a no-op: the late ``payment_intent.created`` of a paid order leaves a note (G6),
    so it is applied, and recorded processed in the transaction that wrote the note."""
    order = await place(api, VISA)
    created = replace(payment_of(api, order), outcome=PaymentOutcome.PENDING)
    webhook = api.provider.signed_webhook("payment_intent.created", payment=created)
    assert (await deliver(api, webhook)).status_code == 200
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    [note] = by_webhook(document)
    assert note["note"].startswith("ignored pending for attempt 1")
    [record] = await inbox(api)
    assert (record.order_id, record.attempts, record.last_error) == (order["id"], 1, None)
    assert record.processed_at is not None


async def test_a_success_with_something_new_is_applied(api: Api) -> None:
    """The attempt awaits 3-D Secure: the success moves it, through the settling."""
    order = await place(api, THREE_DS)
    payment = payment_of(api, order)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    assert (await deliver(api, api.provider.webhooks[-1])).status_code == 200
    document = await detail(api, order["id"])
    assert document["state"] == "paid"
    assert document["payment_attempts"][0]["state"] == str(AttemptState.SUCCEEDED)
    [record] = await inbox(api)
    assert record.processed_at is not None and record.attempts == 1


async def test_a_handed_record_is_read_back_once_the_worker_may_have_taken_it(api: Api) -> None:
    """``process`` trusts the record its request stored only early in the handoff: later
    the stored copy decides (here the worker processed it meanwhile: nothing is applied)."""
    order = await place(api, THREE_DS)
    payment = payment_of(api, order)
    api.provider.complete_action(str(payment.provider_ref), approved=True)
    body, headers = api.provider.webhooks[-1]
    c = api.container
    now = datetime.now(UTC)

    def inbox_at(at: datetime) -> WebhookInbox:
        events = WebhookEvents(c.storage, c.payments, c.recheck, clock=lambda: at)
        return WebhookInbox(
            c.storage,
            c.payments.providers,
            events.apply,
            applied_already=events.applied_already,
            clock=lambda: at,
        )

    received = await inbox_at(now).receive("memory", body, headers)
    handed = received.pending
    assert isinstance(handed, WebhookRecord) and received.record_id == handed.id
    async with c.storage() as uow:  # as if a worker had applied it
        await uow.webhooks.processed(handed.id, at=now, order_id=order["id"])
        await uow.commit()
    late = now + TRUST_HANDED + timedelta(seconds=1)
    await inbox_at(late).process(handed.id, handed)
    assert (await detail(api, order["id"]))["state"] == "action_required"  # not re-applied
    # early in the handoff no worker can have taken it: the handed copy is trusted as is
    await inbox_at(now).process(handed.id, handed)
    assert (await detail(api, order["id"]))["state"] == "paid"
