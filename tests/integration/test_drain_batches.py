"""The drain of waiting orders, which claims, starts and settles them several at a time, keeps
every guarantee of charging one order at a time (real PostgreSQL)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderguard.bootstrap import wire
from orderguard.domain.events import Cause, EventType
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import ChargeRequest, PaymentResult
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory import InMemoryProvider
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.waiting import charge_waiting
from orderguard.storage.errors import StorageError
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import new_order
from tests.integration.conftest import api_settings, memory_providers
from tests.integration.test_payments_api import VISA, charges


async def _waiting(storage: SqlStorage, count: int) -> list[str]:
    orders = [new_order() for _ in range(count)]
    async with storage() as uow:
        for order in orders:
            order.payment_method = VISA
            await uow.orders.add(order)
        await uow.commit()
    return [order.id for order in orders]


class Watching(InMemoryProvider):
    """The in-memory provider, noting at each charge what another connection sees of the
    order in the database, and how many charges it is answering at once."""

    def __init__(self, reader: SqlStorage) -> None:
        super().__init__(name="memory")
        self.reader = reader
        self.seen: dict[str, tuple[OrderState, list[tuple[str, AttemptState]]]] = {}
        self.at_once = 0
        self.most_at_once = 0

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            async with self.reader.reader() as uow:
                order = await uow.orders.get(request.order_id)
            assert order is not None
            attempts = [(a.id, a.state) for a in order.attempts]
            self.seen[request.order_id] = (order.state, attempts)
            await asyncio.sleep(0.001)  # an answer takes a moment: the calls overlap
            return await super().create_payment(request)
        finally:
            self.at_once -= 1


async def test_each_attempt_is_committed_before_its_call_and_calls_stay_within_concurrency(
    pg_url: str,
) -> None:
    store, reader = await open_storage(pg_url), await open_storage(pg_url)
    provider = Watching(reader)
    c = wire(
        api_settings(),
        store,
        Providers([ProviderSlot(provider, CircuitBreaker(failure_threshold=3))]),
    )
    try:
        ids = await _waiting(store, 60)

        sent = await charge_waiting(c.storage, c.payments, limit=10, concurrency=3)

        async with store() as uow:
            orders = [await uow.orders.get(order_id) for order_id in ids]
            timelines = [await uow.orders.timeline(order_id) for order_id in ids]
            events = [await uow.orders.events(order_id) for order_id in ids]
    finally:
        await store.close()
        await reader.close()

    assert sent == 60
    assert provider.most_at_once <= 3
    for order in orders:
        assert order is not None
        (attempt,) = order.attempts
        # seen by another connection when the provider was called: committed, not yet answered
        assert provider.seen[order.id] == (
            OrderState.PAYMENT_PENDING,
            [(attempt.id, AttemptState.PENDING)],
        )
        assert (order.state, attempt.state) == (OrderState.PAID, AttemptState.SUCCEEDED)
        assert len(charges(provider, order.id)) == 1
    for timeline in timelines:
        assert [e.to_state for e in timeline if e.from_state != e.to_state] == [
            OrderState.RECEIVED,
            OrderState.PAYMENT_PENDING,
            OrderState.PAID,
        ]
    assert [[e.type for e in evs] for evs in events] == [[EventType.RECEIVED, EventType.PAID]] * 60


_REFUSE_ONE = """
CREATE FUNCTION og_test_refuse_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.order_id = '{order_id}' AND NEW.type = 'order.paid' THEN
        RAISE EXCEPTION 'refused for the test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER og_test_refuse_paid BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION og_test_refuse_paid();
"""


async def test_an_order_whose_settling_fails_holds_up_no_other_and_loses_nothing(
    pg_url: str,
) -> None:
    store = await open_storage(pg_url)
    c = wire(api_settings(), store, memory_providers())
    provider = c.payments.providers.primary.provider
    assert isinstance(provider, InMemoryProvider)
    try:
        ids = await _waiting(store, 40)
        refused = ids[17]  # settled in a group with others, whatever the timing
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(_REFUSE_ONE.format(order_id=refused).encode())

        with pytest.raises(StorageError, match="refused for the test"):
            await charge_waiting(c.storage, c.payments, limit=8, concurrency=4)

        async with store() as uow:
            orders = {order_id: await uow.orders.get(order_id) for order_id in ids}
            kept = await uow.orders.events(refused)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(b"DROP TRIGGER og_test_refuse_paid ON outbox")
        # the janitor's recheck asks the provider and settles it once the database takes it
        after = await c.recheck.order(refused, cause=Cause.JANITOR)
    finally:
        await store.close()

    others = [orders[order_id] for order_id in ids if order_id != refused]
    assert {o.state for o in others if o} == {OrderState.PAID}
    stuck = orders[refused]
    assert stuck is not None
    assert (stuck.state, [a.state for a in stuck.attempts]) == (
        OrderState.PAYMENT_PENDING,
        [AttemptState.PENDING],
    )
    assert [e.type for e in kept] == [EventType.RECEIVED]  # nothing half-settled
    assert all(len(charges(provider, order_id)) == 1 for order_id in ids)
    assert (after.state, len(after.attempts)) == (OrderState.PAID, 1)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(min_value=1, max_value=45),
    workers=st.integers(min_value=1, max_value=3),
    concurrency=st.integers(min_value=1, max_value=6),
    limit=st.integers(min_value=1, max_value=30),
)
async def test_workers_draining_side_by_side_in_batches_charge_every_order_exactly_once(
    pg_url: str, count: int, workers: int, concurrency: int, limit: int
) -> None:
    providers = memory_providers()
    stores = [await open_storage(pg_url) for _ in range(workers)]
    try:
        ids = await _waiting(stores[0], count)  # earlier examples' orders are all paid
        wired = [wire(api_settings(), store, providers) for store in stores]

        sent = await asyncio.gather(
            *(
                charge_waiting(w.storage, w.payments, limit=limit, concurrency=concurrency)
                for w in wired
            )
        )

        async with stores[0]() as uow:
            orders = [await uow.orders.get(order_id) for order_id in ids]
            left = await uow.orders.waiting_for_payment(1)
    finally:
        for store in stores:
            await store.close()
    provider = providers.primary.provider
    assert isinstance(provider, InMemoryProvider)
    assert sum(sent) == count
    assert left == []
    assert [(o.state, len(o.attempts)) for o in orders if o] == [(OrderState.PAID, 1)] * count
    assert [len(charges(provider, order_id)) for order_id in ids] == [1] * count


class Holding(InMemoryProvider):
    """The in-memory provider, holding back its answer for one order until told."""

    def __init__(self, held: str) -> None:
        super().__init__(name="memory")
        self.held = held
        self.release = asyncio.Event()

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        if request.order_id == self.held:
            await self.release.wait()
        return await super().create_payment(request)


async def test_answered_orders_are_settled_while_a_slow_call_is_still_out(pg_url: str) -> None:
    store = await open_storage(pg_url)
    try:
        ids = await _waiting(store, 6)  # the trial, then 4 answered: fewer than settled at least
        provider = Holding(held=ids[3])
        c = wire(
            api_settings(),
            store,
            Providers([ProviderSlot(provider, CircuitBreaker(failure_threshold=3))]),
        )
        drain = asyncio.create_task(charge_waiting(c.storage, c.payments, concurrency=4))

        async def states() -> list[OrderState]:
            async with store.reader() as uow:  # reads without locking, or the drain skips
                found = [await uow.orders.get(order_id) for order_id in ids]
            return [o.state if o else OrderState.CANCELLED for o in found]

        expected = [OrderState.PAID] * 6
        expected[3] = OrderState.PAYMENT_PENDING
        deadline = asyncio.get_running_loop().time() + 60
        while (seen := await states()) != expected:
            assert not drain.done(), await drain
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.05)
        provider.release.set()
        sent = await drain
        final = await states()
    finally:
        await store.close()

    assert sent == 6
    assert final == [OrderState.PAID] * 6
