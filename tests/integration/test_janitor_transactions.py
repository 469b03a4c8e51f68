"""What janitor checks cost in transactions, on SQLite and PostgreSQL.

A round of one order is two units of work: the claim, which leases the order and reads it,
and one transaction that settles what the provider said, reschedules the order and gives its
lease back. The provider is asked between them, never inside a transaction. Checks that end
together are settled together: eight at once cost one settling transaction between them.
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
from orderguard.services import janitor as janitor_module
from orderguard.services.janitor import Janitor, JanitorRound
from orderguard.services.recheck import Recheck
from orderguard.storage.database import transaction
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory
from orderguard.storage.unit_of_work import SqlStorage
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
    """Whether a second worker could lease the order at ``clock()``: no lease holds it."""
    return await _all_claimable_by_another(api, [order_id], clock)


async def _all_claimable_by_another(api: Api, order_ids: list[str], clock: Clock) -> bool:
    """Whether a second worker could lease every one of the orders at ``clock()``."""
    now = clock()
    async with api.container.storage() as uow:
        claimed = await uow.leases.claim_due_orders(
            frozenset(OrderState),
            now=now,
            first_due_before=now,
            owner="another",
            until=now + timedelta(seconds=60),
            limit=len(order_ids) + 10,
        )
        await uow.commit()
    return set(order_ids) <= set(claimed)


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


async def test_a_check_that_finds_the_charge_costs_two_transactions(api: Api) -> None:
    order, clock, watched = await _due_unknown(api, charged=True)

    report = await watched.janitor.run_once(owner="w1")

    assert watched.storage.opened == 2  # claim + read, settle + reschedule + release
    assert watched.calls == [("find_payments", 0)]  # asked outside any transaction
    assert (report.checked, report.resolved) == (1, 1)
    assert (await _stored(api, order["id"])).state is OrderState.PAID
    assert len(charges(api.provider, order["id"])) == 1
    assert await _claimable_by_another(api, order["id"], clock)


async def test_a_check_that_resends_under_the_same_key_costs_two_transactions(
    api: Api,
) -> None:
    order, _, watched = await _due_unknown(api)  # never reached the provider

    report = await watched.janitor.run_once(owner="w1")

    assert watched.storage.opened == 2
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

    assert watched.storage.opened == 2
    assert watched.calls == [("find_payments", 0)]
    assert (first.checked, first.resolved, first.escalated) == (1, 0, 0)
    assert stored.state is OrderState.PAYMENT_UNKNOWN
    assert (stored.checks, stored.next_check_at) == (1, clock() + timedelta(seconds=10))

    clock.advance(seconds=11)  # the second check runs the schedule out: flagged, same count
    second = await watched.janitor.run_once(owner="w1")
    assert watched.storage.opened == 4
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

    assert watched.storage.opened == 2
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

    assert watched.storage.opened == 2
    assert (stored.state, stored.checks) == (OrderState.PAYMENT_UNKNOWN, 1)
    clock.advance(seconds=31)
    assert await _claimable_by_another(api, order["id"], clock)


async def test_checks_that_end_together_are_settled_in_one_transaction(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(janitor_module, "SETTLE_WAIT_S", 10.0)  # a slow machine waits too
    breaker = api.container.payments.providers.primary.breaker
    placed = []
    for _ in range(8):  # as many as the janitor asks about at once (its default)
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        placed.append(await place(api, VISA))
        breaker.record_success()  # lost answers count against the breaker; keep it closed
    clock = Clock()
    clock.advance(seconds=11)
    watched = Watched(api, clock, RecheckSchedule())
    all_asked, asked = asyncio.Event(), []
    find = api.provider.find_payments  # the watched one

    async def answer_together(order_id: str) -> list[PaymentResult]:
        asked.append(order_id)
        if len(asked) == 8:
            all_asked.set()
        await all_asked.wait()  # every answer comes back at the same moment
        return await find(order_id)

    api.provider.find_payments = answer_together  # type: ignore[method-assign]
    report = await asyncio.wait_for(watched.janitor.run_once(owner="w1"), timeout=30)

    # the claim of eight (each read whole), a claim that finds none left, one settling
    assert watched.storage.opened == 3
    assert sorted(asked) == sorted(order["id"] for order in placed)
    assert (report.checked, report.resolved) == (8, 8)
    for order in placed:
        assert (await _stored(api, order["id"])).state is OrderState.PAID
        assert len(charges(api.provider, order["id"])) == 1
    assert await _all_claimable_by_another(api, [order["id"] for order in placed], clock)


async def _refuse_paying(api: Api, order_id: str, *, refuse: bool) -> None:
    """A trigger in the database that refuses to move ``order_id`` to ``paid`` (a settling of
    that order that fails, as a conflicting change or a broken row would make it), or its
    removal."""
    storage = api.container.storage
    assert isinstance(storage, SqlStorage)
    postgres = storage.db.dialect == "postgresql"
    if refuse and postgres:
        statements = [
            "CREATE FUNCTION og_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER og_test_refuse BEFORE UPDATE ON orders FOR EACH ROW "
            f"WHEN (NEW.state = 'paid' AND OLD.id = '{order_id}') "
            "EXECUTE FUNCTION og_test_refuse()",
        ]
    elif refuse:
        statements = [
            "CREATE TRIGGER og_test_refuse BEFORE UPDATE ON orders FOR EACH ROW "
            f"WHEN NEW.state = 'paid' AND OLD.id = '{order_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ]
    else:
        statements = ["DROP TRIGGER og_test_refuse" + (" ON orders" if postgres else "")]
    async with transaction(storage.db) as conn:
        for statement in statements:
            await conn.execute(statement)


async def test_an_order_whose_settling_fails_costs_the_others_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(janitor_module, "SETTLE_WAIT_S", 10.0)
    breaker = api.container.payments.providers.primary.breaker
    placed = []
    for _ in range(8):
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        placed.append((await place(api, VISA))["id"])
        breaker.record_success()
    refused = placed[3]
    await _refuse_paying(api, refused, refuse=True)
    clock = Clock()
    clock.advance(seconds=11)
    watched = Watched(api, clock, RecheckSchedule())
    all_asked, asked = asyncio.Event(), []
    find = api.provider.find_payments

    async def answer_together(order_id: str) -> list[PaymentResult]:
        asked.append(order_id)
        if len(asked) == 8:
            all_asked.set()
        await all_asked.wait()  # settled in one batch, the refused order among them
        return await find(order_id)

    api.provider.find_payments = answer_together  # type: ignore[method-assign]
    # a round with room for more than the 8: it claims again after the first 8 are settled
    report = await asyncio.wait_for(watched.janitor.run_once(owner="w1", limit=50), timeout=30)

    # the claim; the batch, refused as a whole; each order again alone (the refused one
    # fails again); a second claim that finds nothing due: the refused order kept its lease,
    # so no claim of the round took it again and the provider was asked about it once
    assert watched.storage.opened == 1 + 1 + 8 + 1
    assert asked.count(refused) == 1
    assert sorted(asked) == sorted(placed)
    assert (report.checked, report.resolved) == (7, 7)
    for order_id in placed:
        stored = await _stored(api, order_id)
        expected = OrderState.PAYMENT_UNKNOWN if order_id == refused else OrderState.PAID
        assert stored.state is expected
        assert len(charges(api.provider, order_id)) == 1  # charged once, found by the check
    assert (await _stored(api, refused)).checks == 0  # its settling rolled back, whole
    assert not await _claimable_by_another(api, refused, clock)  # held until the lease ends
    clock.advance(seconds=61)  # the janitor's lease is 60 s
    assert await _claimable_by_another(api, refused, clock)  # another worker may take it

    await _refuse_paying(api, refused, refuse=False)  # the trouble passes: the next round
    api.provider.find_payments = find  # type: ignore[method-assign]
    clock.advance(seconds=61)  # past the lease the look above took
    again = await watched.janitor.run_once(owner="w1")
    assert (again.checked, again.resolved) == (1, 1)
    assert (await _stored(api, refused)).state is OrderState.PAID
    assert len(charges(api.provider, refused)) == 1
