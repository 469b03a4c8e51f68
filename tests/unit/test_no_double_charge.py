"""G3 as a property: whatever faults, retries and second attempts happen, no order is
charged twice, and no order is paid without a matching charge at the provider."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderguard.bootstrap import Container, wire
from orderguard.config import Settings
from orderguard.domain.errors import DomainError
from orderguard.domain.events import Cause
from orderguard.domain.order import OrderLine
from orderguard.providers.base import (
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker, RetryingProvider, RetryPolicy
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.intake import PlaceOrder
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.storage.memory import InMemoryStorage
from tests.factories import customer

METHODS = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"]
#: (error, after the effect?), a search index that lags behind writes (as Stripe's may,
#: for up to a minute), or no fault.
LAGGING_SEARCH = "lagging search"
FAULTS: list[tuple[type[ProviderError], bool] | str | None] = [
    None,
    LAGGING_SEARCH,
    LAGGING_SEARCH,
    (ProviderUnavailable, False),
    (ProviderRateLimited, False),
    (ProviderRejected, False),
    (ProviderServerError, False),
    (ProviderServerError, True),
    (ProviderOutcomeUnknown, True),
]


class LaggingSearch(InMemoryProvider):
    """Search finds nothing while ``lagging`` is set; everything else is exact."""

    lagging = False

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return [] if self.lagging else await super().find_payments(order_id)


#: A follow-up action on an order, e.g. ("recheck", fault) or ("authenticate", True).
Step = tuple[Any, ...]
fault = st.sampled_from(FAULTS)
follow_up = st.one_of(
    st.tuples(st.just("retry"), fault),
    st.tuples(st.just("pay_again"), st.sampled_from(METHODS), fault),
    st.tuples(st.just("recheck"), fault),
    st.tuples(st.just("authenticate"), st.booleans()),
)
#: One order's story: how it was placed (method, fault), then what happened to it.
story = st.tuples(st.sampled_from(METHODS), fault, st.lists(follow_up, min_size=1, max_size=6))
stories = st.lists(story, min_size=1, max_size=3)


@dataclass
class World:
    container: Container
    provider: LaggingSearch
    order_ids: list[str] = field(default_factory=list)


async def _no_wait(_: float) -> None:
    return None


def _world() -> World:
    provider = LaggingSearch(name="memory")
    retrying = RetryingProvider(provider, policy=RetryPolicy(attempts=2), sleep=_no_wait)
    providers = Providers([ProviderSlot(retrying, CircuitBreaker(failure_threshold=1000))])
    container = wire(Settings(public_url="https://shop.example"), InMemoryStorage(), providers)
    return World(container, provider)


def _command(method: str) -> PlaceOrder:
    request = KeyedRequest("local", str(uuid.uuid4()), uuid.uuid4().hex)
    return PlaceOrder(
        request=request,
        currency="EUR",
        customer=customer(),
        lines=[OrderLine("SKU", "Thing", 1, 1234)],
        payment_method=method,
    )


def _inject(world: World, fault: object) -> None:
    world.provider.lagging = fault == LAGGING_SEARCH
    if isinstance(fault, tuple):
        error, after = fault
        world.provider.fail_next(error("injected"), after_effect=after)


def _clear(world: World) -> None:
    world.provider._failures.clear()  # a fault not consumed must not leak into the next step
    world.provider.lagging = False


async def _tell(world: World, method: str, placing_fault: object, follow_ups: list[Step]) -> None:
    command = _command(method)
    _inject(world, placing_fault)
    answer = await world.container.intake.place(command)
    _clear(world)
    world.order_ids.append(answer.order_id)
    for step in follow_ups:
        if step[0] != "authenticate":
            _inject(world, step[-1])
        try:
            await _follow_up(world, command, answer.order_id, step)
        except DomainError:
            pass  # refused as the rules say (e.g. paying a paid order again)
        _clear(world)
        await _check(world)


async def _follow_up(world: World, command: PlaceOrder, order_id: str, step: Step) -> None:
    kind = step[0]
    if kind == "retry":
        answer = await world.container.intake.place(command)
        assert answer.order_id == order_id
    elif kind == "pay_again":
        request = KeyedRequest("local", str(uuid.uuid4()), uuid.uuid4().hex)
        await world.container.pay_again.pay(order_id, str(step[1]), request)
    elif kind == "recheck":
        await world.container.recheck.order(order_id, cause=Cause.JANITOR)
    elif kind == "authenticate":
        for payment in list(world.provider.payments.values()):
            if payment.result.order_id == order_id:
                world.provider.complete_action(
                    payment.result.provider_ref or "", approved=bool(step[1])
                )


async def _check(world: World) -> None:
    for order_id in world.order_ids:
        async with world.container.storage() as uow:
            order = await uow.orders.get(order_id)
        assert order is not None
        succeeded = [
            p.result
            for p in world.provider.payments.values()
            if p.result.order_id == order_id and p.result.outcome is PaymentOutcome.SUCCEEDED
        ]
        assert len(succeeded) <= 1, f"{order_id} charged {len(succeeded)} times"
        if order.state == "paid":
            assert len(succeeded) == 1, f"{order_id} paid without a charge"
            assert (succeeded[0].amount, succeeded[0].currency.upper()) == (  # type: ignore[union-attr]
                order.total.amount,
                order.currency,
            )


async def _scenario(plan: list[tuple[str, object, list[Step]]]) -> None:
    world = _world()
    for method, placing_fault, follow_ups in plan:
        await _tell(world, method, placing_fault, follow_ups)
        await _check(world)
    for order_id in world.order_ids:  # then let recovery finish everything
        await world.container.recheck.order(order_id, cause=Cause.JANITOR)
    await _check(world)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stories)
def test_no_order_is_charged_twice_or_paid_without_its_charge(
    plan: list[tuple[str, object, list[Step]]],
) -> None:
    asyncio.run(_scenario(plan))
