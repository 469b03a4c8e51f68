"""The one settle path on SQLite and PostgreSQL: what it applies and stores, in one
transaction, and the general lock-change-save skeleton beside it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.settling import Answered, Reply, mutate, settle
from orderguard.storage.ports import UnitOfWork
from tests.integration.conftest import Api
from tests.integration.test_payments_api import THREE_DS, place

AT = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _at() -> datetime:
    return AT


async def _stored(api: Api, order_id: str) -> Any:
    async with api.container.storage() as uow:
        return await uow.orders.get(order_id)


async def test_settling_applies_the_answer_names_who_asked_and_completes_the_request(
    api: Api,
) -> None:
    order = await place(api, THREE_DS)
    attempt_id = order["payment_attempts"][0]["id"]
    request = KeyedRequest("test", "key-1", "fingerprint")
    async with api.container.storage() as uow:  # an in-flight request, as intake leaves it
        assert await uow.idempotency.claim(request.record(AT, order["id"], body=None)) is None
        await uow.commit()
    paid = Answered(attempt_id, Outcome(AttemptState.SUCCEEDED, provider_ref="pi_x"))

    settled = await settle(
        api.container.storage,
        order["id"],
        [paid],
        cause=Cause.SUPPORT,
        clock=_at,
        actor="olga",
        reply=Reply(request, lambda o: f"answer {o.state}".encode()),
    )

    stored = await _stored(api, order["id"])
    async with api.container.storage() as uow:
        record = await uow.idempotency.claim(request.record(AT, order["id"], body=None))
    assert (settled.order.state, settled.answered, settled.body) == (
        OrderState.PAID,
        (paid,),
        b"answer paid",
    )
    assert stored.state is OrderState.PAID and stored.attempts[0].provider_ref == "pi_x"
    assert record is not None and record.response_body == b"answer paid"
    timeline = (await api.client.get(f"/v1/orders/{order['id']}")).json()["timeline"]
    assert (timeline[-1]["to_state"], timeline[-1]["cause"], timeline[-1]["actor"]) == (
        "paid",
        "support",
        "olga",
    )


async def test_what_settling_does_after_the_answers_is_in_their_transaction(api: Api) -> None:
    order = await place(api, THREE_DS)
    attempt_id = order["payment_attempts"][0]["id"]
    paid = Answered(attempt_id, Outcome(AttemptState.SUCCEEDED))

    async def then(uow: UnitOfWork, current: Order) -> None:
        assert current.state is OrderState.PAID  # the answers are applied first
        raise RuntimeError("the lease could not be given back")

    with pytest.raises(RuntimeError):
        await settle(
            api.container.storage, order["id"], [paid], cause=Cause.JANITOR, clock=_at, then=then
        )
    stored = await _stored(api, order["id"])
    assert (stored.state, stored.attempts[0].state) == (
        OrderState.ACTION_REQUIRED,
        AttemptState.ACTION_REQUIRED,
    )


async def test_settling_an_order_we_do_not_have_raises_not_found(api: Api) -> None:
    with pytest.raises(OrderNotFound):
        await settle(api.container.storage, "ord_nobody", [], cause=Cause.API, clock=_at)


async def test_a_change_that_finds_nothing_to_do_saves_nothing(api: Api) -> None:
    order = await place(api, None)
    before = await _stored(api, order["id"])

    unchanged = await mutate(api.container.storage, order["id"], lambda o: False)
    after_nothing = await _stored(api, order["id"])
    noted = await mutate(
        api.container.storage,
        order["id"],
        lambda o: o.note("looked at", cause=Cause.SUPPORT, at=AT, actor="olga"),
    )
    after_note = await _stored(api, order["id"])

    assert (unchanged.saved, after_nothing.version) == (False, before.version)
    assert (noted.saved, after_note.version) == (True, before.version + 1)
    timeline = (await api.client.get(f"/v1/orders/{order['id']}")).json()["timeline"]
    assert (timeline[-1]["note"], timeline[-1]["actor"]) == ("looked at", "olga")
