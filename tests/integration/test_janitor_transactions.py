"""What one janitor check costs in transactions, on SQLite and PostgreSQL.

A check is three units of work: the round's claim, a read of the order, and one transaction
that settles what the provider said, reschedules the order and gives its lease back. The
provider is asked between them, never inside a transaction.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import TracebackType
from typing import Any

import pytest

from orderguard.domain.schedule import RecheckSchedule
from orderguard.domain.states import OrderState
from orderguard.providers.base import (
    ChargeRequest,
    PaymentResult,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
)
from orderguard.services.janitor import Janitor, JanitorRound
from orderguard.services.recheck import Recheck
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory
from tests.integration.conftest import Api
from tests.integration.test_janitor import Clock
from tests.integration.test_payments_api import VISA, charges, place


class CountingStorage:
    """The storage, counting the units of work opened and those open right now."""

    def __init__(self, inner: UnitOfWorkFactory) -> None:
        self._inner = inner
        self.opened = 0
        self.open_now = 0

    def __call__(self) -> Any:
        self.opened += 1
        return _Counted(self, self._inner())

    async def close(self) -> None:
        await self._inner.close()


class _Counted:
    def __init__(self, storage: CountingStorage, uow: UnitOfWork) -> None:
        self._storage = storage
        self._uow = uow

    async def __aenter__(self) -> UnitOfWork:
        self._storage.open_now += 1
        return await self._uow.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._uow.__aexit__(exc_type, exc, tb)
        finally:
            self._storage.open_now -= 1


class Watched:
    """A janitor over counted storage, and the transactions open at each provider call."""

    def __init__(self, api: Api, clock: Clock, schedule: RecheckSchedule) -> None:
        self.storage = CountingStorage(api.container.storage)
        recheck = Recheck(self.storage, api.container.payments, clock=clock)
        self.janitor = Janitor(self.storage, recheck, schedule=schedule, clock=clock)
        #: (provider call, transactions open during it), in call order.
        self.calls: list[tuple[str, int]] = []
        provider = api.provider
        find, create = provider.find_payments, provider.create_payment

        async def find_payments(order_id: str) -> list[PaymentResult]:
            self.calls.append(("find_payments", self.storage.open_now))
            return await find(order_id)

        async def create_payment(request: ChargeRequest) -> PaymentResult:
            self.calls.append(("create_payment", self.storage.open_now))
            return await create(request)

        provider.find_payments = find_payments  # type: ignore[method-assign]
        provider.create_payment = create_payment  # type: ignore[method-assign]


async def _claimable_by_another(api: Api, order_id: str, clock: Clock) -> bool:
    """Whether a second worker could lease the order at ``clock()``: its lease was given back."""
    now = clock()
    async with api.container.storage() as uow:
        claimed = await uow.leases.claim_due_orders(
            frozenset(OrderState),
            now=now,
            first_due_before=now,
            owner="another",
            until=now + timedelta(seconds=60),
            limit=10,
        )
        await uow.commit()
    return order_id in claimed


async def _stored(api: Api, order_id: str) -> Any:
    async with api.container.storage() as uow:
        return await uow.orders.get(order_id)


async def _due_unknown(
    api: Api, *, charged: bool = False, schedule: RecheckSchedule | None = None
) -> tuple[dict[str, Any], Clock, Watched]:
    """An order left in ``payment_unknown`` (its answer lost; the charge made when
    ``charged``), its first recheck due, and the janitor that watches it."""
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=charged)
    order = await place(api, VISA)
    clock = Clock()
    clock.advance(seconds=11)
    return order, clock, Watched(api, clock, schedule or RecheckSchedule())


async def test_a_check_that_finds_the_charge_costs_three_transactions(api: Api) -> None:
    order, clock, watched = await _due_unknown(api, charged=True)

    report = await watched.janitor.run_once(owner="w1")

    assert watched.storage.opened == 3  # claim, read, settle + reschedule + release
    assert watched.calls == [("find_payments", 0)]  # asked outside any transaction
    assert (report.checked, report.resolved) == (1, 1)
    assert (await _stored(api, order["id"])).state is OrderState.PAID
    assert len(charges(api.provider, order["id"])) == 1
    assert await _claimable_by_another(api, order["id"], clock)


async def test_a_check_that_resends_under_the_same_key_costs_three_transactions(
    api: Api,
) -> None:
    order, _, watched = await _due_unknown(api)  # never reached the provider

    report = await watched.janitor.run_once(owner="w1")

    assert watched.storage.opened == 3
    assert watched.calls == [("find_payments", 0), ("create_payment", 0)]
    assert (report.checked, report.resolved) == (1, 1)
    assert (await _stored(api, order["id"])).state is OrderState.PAID
    assert len(charges(api.provider, order["id"])) == 1


async def test_an_unanswered_check_is_rescheduled_and_released_in_its_one_transaction(
    api: Api,
) -> None:
    schedule = RecheckSchedule({OrderState.PAYMENT_UNKNOWN: (timedelta(seconds=10),) * 2})
    order, clock, watched = await _due_unknown(api, schedule=schedule)

    async def cannot_tell(order_id: str) -> list[PaymentResult]:
        watched.calls.append(("find_payments", watched.storage.open_now))
        raise ProviderUnavailable("the provider cannot tell")

    api.provider.find_payments = cannot_tell  # type: ignore[method-assign]
    first = await watched.janitor.run_once(owner="w1")
    stored = await _stored(api, order["id"])

    assert watched.storage.opened == 3
    assert watched.calls == [("find_payments", 0)]
    assert (first.checked, first.resolved, first.escalated) == (1, 0, 0)
    assert stored.state is OrderState.PAYMENT_UNKNOWN
    assert (stored.checks, stored.next_check_at) == (1, clock() + timedelta(seconds=10))

    clock.advance(seconds=11)  # the second check runs the schedule out: flagged, same count
    second = await watched.janitor.run_once(owner="w1")
    assert watched.storage.opened == 6
    assert (second.checked, second.escalated) == (1, 1)
    assert [f.reason for f in (await _stored(api, order["id"])).open_flags] == [
        "payment_unresolved"
    ]
    clock.advance(seconds=11)
    assert await _claimable_by_another(api, order["id"], clock)


async def test_a_check_whose_provider_call_breaks_still_counts_and_gives_its_lease_back(
    api: Api,
) -> None:
    order, clock, watched = await _due_unknown(api)

    async def broken(order_id: str) -> list[PaymentResult]:
        raise RuntimeError("a bug in the adapter")

    api.provider.find_payments = broken  # type: ignore[method-assign]
    report = await watched.janitor.run_once(owner="w1")
    stored = await _stored(api, order["id"])

    assert watched.storage.opened == 3
    assert report == JanitorRound(checked=0, resolved=0, escalated=0)  # the failure is logged
    assert (stored.state, stored.checks) == (OrderState.PAYMENT_UNKNOWN, 1)
    clock.advance(seconds=31)  # past its next check (the second wait is 30 s)
    assert await _claimable_by_another(api, order["id"], clock)


async def test_a_check_stopped_while_asking_still_counts_and_gives_its_lease_back(
    api: Api,
) -> None:
    order, clock, watched = await _due_unknown(api)

    async def stopped(order_id: str) -> list[PaymentResult]:
        raise asyncio.CancelledError  # the worker is shutting down mid-call

    api.provider.find_payments = stopped  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await watched.janitor.run_once(owner="w1")
    stored = await _stored(api, order["id"])

    assert watched.storage.opened == 3
    assert (stored.state, stored.checks) == (OrderState.PAYMENT_UNKNOWN, 1)
    clock.advance(seconds=31)
    assert await _claimable_by_another(api, order["id"], clock)


async def test_an_order_that_moved_on_after_the_claim_costs_one_transaction_besides_it(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
    order = await place(api, VISA)
    clock = Clock()
    clock.advance(seconds=11)
    now = clock()
    async with api.container.storage() as uow:  # w1 claims it ...
        await uow.leases.claim_due_orders(
            RecheckSchedule().watched,
            now=now,
            first_due_before=now - timedelta(seconds=10),
            owner="w1",
            until=now + timedelta(seconds=60),
            limit=5,
        )
        await uow.commit()
    await api.client.post(f"/v1/orders/{order['id']}/recheck", json={})  # ... support settles it
    watched = Watched(api, clock, RecheckSchedule())

    await watched.janitor._check(order["id"], "w1", JanitorRound())

    assert watched.storage.opened == 1  # the read, which gives the lease back
    assert watched.calls == []
    assert await _claimable_by_another(api, order["id"], clock)
