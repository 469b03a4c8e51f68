"""The refund check on SQLite and PostgreSQL: a refund left pending because the provider's
answer or its notification was lost is looked up and settled as the notification would
have settled it; a lookup that gets no answer never fails it; a refund the provider keeps
pending is escalated once its schedule runs out, and a late answer still settles it.

The provider is the in-memory fake behind the app's own wiring; its refunds book is the
oracle for what was given back, and the webhooks it signs are never delivered here (that
is the lost notification).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orderguard.domain.refund_schedule import RefundCheckSchedule
from orderguard.providers.base import (
    DelegatingProvider,
    ProviderOutcomeUnknown,
    ProviderServerError,
    ProviderUnavailable,
    RefundResult,
)
from orderguard.providers.resilience import CircuitBreaker
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.refund_check import RefundCheck
from tests.integration.conftest import Api
from tests.integration.test_payments_api import place
from tests.integration.test_refunds_api import detail, later_operations, refund

#: Past the default schedule's first wait (5 minutes): the first lookup is due.
DUE = timedelta(minutes=6)


def checker(api: Api, by: timedelta, schedule: RefundCheckSchedule | None = None) -> RefundCheck:
    """The app's refund check, with a clock ``by`` ahead of now."""
    return RefundCheck(
        api.container.storage,
        api.container.payments.providers,
        schedule=schedule,
        clock=lambda: datetime.now(UTC) + by,
    )


async def pending_refund(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """A paid order refunded in full, the provider still processing the refund."""
    order = await place(api)
    api.provider.hold_next_refund()
    answer = await refund(api, order["id"], "rf-1", reason="returned")
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()["refund"]
    assert (made["state"], made["provider_ref"] is not None) == ("pending", True)
    return order, made


async def event_types(api: Api, order_id: str) -> list[str]:
    async with api.container.storage() as uow:
        return [str(e.type) for e in await uow.orders.events(order_id)]


def given_back(api: Api) -> list[int]:
    """What the provider's own book holds as refunded (succeeded)."""
    return [r.amount for r in api.provider.refunds if r.status == "succeeded"]


async def test_a_refund_whose_notification_was_lost_is_settled_by_the_lookup(api: Api) -> None:
    order, made = await pending_refund(api)
    api.provider.settle_refund(made["provider_ref"], "succeeded")  # its webhook never arrives
    early = await checker(api, timedelta(minutes=4)).run_once(owner="w1")
    assert early.checked == 0  # younger than the first wait
    assert (await detail(api, order["id"]))["refunds"][0]["state"] == "pending"

    done = await checker(api, DUE).run_once(owner="w1")

    assert (done.checked, done.settled, done.unknown) == (1, 1, 0)
    document = await detail(api, order["id"])
    assert (document["state"], document["amount_refunded"]) == ("refunded", order["amount_total"])
    assert document["refunds"][0]["state"] == "succeeded"
    assert given_back(api) == [order["amount_total"]]
    last = document["timeline"][-1]
    assert (last["to_state"], last["cause"]) == ("refunded", "janitor")
    assert "order.refunded" in await event_types(api, order["id"])
    assert (await checker(api, DUE * 100).run_once(owner="w1")).checked == 0  # nothing left


async def test_a_refund_that_failed_at_the_provider_is_settled_failed_and_flagged(
    api: Api,
) -> None:
    order, made = await pending_refund(api)
    api.provider.settle_refund(made["provider_ref"], "failed", reason="expired_or_canceled_card")

    done = await checker(api, DUE).run_once(owner="w1")

    assert (done.checked, done.settled) == (1, 1)
    document = await detail(api, order["id"])
    assert (document["state"], document["amount_refunded"]) == ("paid", 0)
    assert document["refunds"][0]["state"] == "failed"
    assert document["refunds"][0]["failure_reason"] == "expired_or_canceled_card"
    assert [f["reason"] for f in document["flags"]] == ["refund_failed"]
    assert document["amount_refundable"] == order["amount_total"]  # may be refunded again


async def test_a_lookup_answering_5xx_never_fails_the_refund_and_the_schedule_escalates_once(
    api: Api,
) -> None:
    order, made = await pending_refund(api)
    schedule = RefundCheckSchedule((timedelta(minutes=1),) * 3)
    for day in range(1, 5):  # three lookups, then one past the schedule: each 500
        api.provider.fail_next(ProviderServerError("500 from the provider"))
        done = await checker(api, timedelta(days=day), schedule).run_once(owner="w1")
        assert (done.checked, done.unknown, done.settled) == (1, 1, 0)
        assert done.escalated == (1 if day == 3 else 0)
        document = await detail(api, order["id"])
        assert document["refunds"][0]["state"] == "pending"  # never failed
        assert len(document["flags"]) == (0 if day < 3 else 1)
    [flag] = document["flags"]
    assert flag["reason"] == "refund_unresolved"
    assert made["id"] in flag["detail"] and "no answer" in flag["detail"]

    api.provider.settle_refund(made["provider_ref"], "succeeded")  # a late answer still counts
    late = await checker(api, timedelta(days=6), schedule).run_once(owner="w1")
    assert (late.checked, late.settled) == (1, 1)
    document = await detail(api, order["id"])
    assert (document["state"], document["refunds"][0]["state"]) == ("refunded", "succeeded")


async def test_a_refund_the_provider_keeps_pending_is_looked_up_again_later_then_escalated(
    api: Api,
) -> None:
    order, _ = await pending_refund(api)
    schedule = RefundCheckSchedule((timedelta(minutes=5), timedelta(hours=1)))
    first = await checker(api, DUE, schedule).run_once(owner="w1")
    assert (first.checked, first.settled, first.escalated) == (1, 0, 0)
    soon = await checker(api, DUE + timedelta(minutes=30), schedule).run_once(owner="w1")
    assert soon.checked == 0  # the next lookup waits an hour
    second = await checker(api, DUE + timedelta(hours=2), schedule).run_once(owner="w1")
    assert (second.checked, second.escalated) == (1, 1)
    document = await detail(api, order["id"])
    [flag] = document["flags"]
    assert flag["reason"] == "refund_unresolved" and "still reports it pending" in flag["detail"]
    assert document["refunds"][0]["state"] == "pending"


async def test_a_refund_whose_answer_was_lost_is_found_by_its_key_and_made_once(
    api: Api,
) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderOutcomeUnknown("read timed out"), after_effect=True)
    answer = await refund(api, order["id"], "rf-1", reason="returned")
    assert answer.status_code == 503, answer.text
    pending = (await detail(api, order["id"]))["refunds"][0]
    assert (pending["state"], pending["provider_ref"]) == ("pending", None)

    done = await checker(api, DUE).run_once(owner="w1")

    assert (done.checked, done.settled) == (1, 1)
    document = await detail(api, order["id"])
    [settled] = document["refunds"]
    assert settled["state"] == "succeeded"
    assert settled["provider_ref"] == api.provider.refunds[0].refund_ref
    assert await later_operations(api, DUE).retry_refunds(older_than=timedelta(0)) == 0
    assert given_back(api) == [order["amount_total"]]  # made once


async def test_a_refund_the_provider_never_got_stays_pending_and_is_sent_again(
    api: Api,
) -> None:
    order = await place(api)
    api.provider.fail_next(ProviderUnavailable("connection refused"))
    assert (await refund(api, order["id"], "rf-1", reason="returned")).status_code == 503

    done = await checker(api, DUE).run_once(owner="w1")

    assert (done.checked, done.settled, done.escalated) == (1, 0, 0)
    document = await detail(api, order["id"])
    assert (document["refunds"][0]["state"], document["flags"]) == ("pending", [])
    assert given_back(api) == []
    assert await later_operations(api, DUE).retry_refunds(older_than=timedelta(0)) == 1
    assert (await detail(api, order["id"]))["refunds"][0]["state"] == "succeeded"
    assert given_back(api) == [order["amount_total"]]


class SlowLookups(DelegatingProvider):
    """The fake provider, each refund lookup counted and taking a moment (so two workers'
    rounds overlap)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.looked_up: list[str] = []

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        self.looked_up.append(idempotency_key)
        await asyncio.sleep(0.2)
        return await super().retrieve_refund(
            provider_ref, idempotency_key=idempotency_key, metadata=metadata, refund_ref=refund_ref
        )


async def test_two_workers_at_once_look_each_refund_up_once(api: Api) -> None:
    made = [(await pending_refund(api))[1] for _ in range(3)]
    for one in made:
        api.provider.settle_refund(one["provider_ref"], "succeeded")
    slow = SlowLookups(api.provider)
    providers = Providers([ProviderSlot(slow, CircuitBreaker(failure_threshold=3))])

    def worker() -> RefundCheck:
        clock = lambda: datetime.now(UTC) + DUE  # noqa: E731
        return RefundCheck(api.container.storage, providers, clock=clock)

    rounds = await asyncio.gather(worker().run_once(owner="w1"), worker().run_once(owner="w2"))

    assert sorted(slow.looked_up) == sorted(f"orderguard-refund-{m['id']}" for m in made)
    assert sum(r.settled for r in rounds) == 3
    assert given_back(api) == [m["amount"] for m in made]


class OtherAmount(DelegatingProvider):
    """The fake provider, its refund lookups reporting one cent less than was refunded."""

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        found = await super().retrieve_refund(
            provider_ref, idempotency_key=idempotency_key, metadata=metadata, refund_ref=refund_ref
        )
        return None if found is None else dataclasses.replace(found, amount=found.amount - 1)


async def test_a_lookup_reporting_another_amount_settles_nothing_and_flags_at_once(
    api: Api,
) -> None:
    order, made = await pending_refund(api)
    api.provider.settle_refund(made["provider_ref"], "succeeded")
    providers = Providers(
        [ProviderSlot(OtherAmount(api.provider), CircuitBreaker(failure_threshold=3))]
    )
    check = RefundCheck(api.container.storage, providers, clock=lambda: datetime.now(UTC) + DUE)

    done = await check.run_once(owner="w1")

    assert (done.checked, done.settled, done.escalated) == (1, 0, 1)
    document = await detail(api, order["id"])
    assert (document["state"], document["amount_refunded"]) == ("paid", 0)
    assert document["refunds"][0]["state"] == "pending"
    [flag] = document["flags"]
    assert flag["reason"] == "refund_unresolved"
    assert f"reports {made['amount'] - 1} EUR succeeded" in flag["detail"], flag["detail"]
