"""The worker's duties run on their own intervals, and one order's trouble stays its own."""

from __future__ import annotations

from typing import Any

from orderguard.bootstrap import new_worker
from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.providers.base import ProviderOutcomeUnknown
from orderguard.worker import PRUNE_EVERY_SECONDS
from tests.integration.conftest import Api
from tests.integration.test_janitor import Clock, janitor
from tests.integration.test_payments_api import VISA, place


async def test_each_duty_runs_on_its_own_interval(api: Api) -> None:
    every = {name: seconds for name, _, seconds in new_worker(api.container)._duties(None)}
    assert every["sweep"] == api.container.settings.sweep_every_s == 300
    assert every["prune"] == PRUNE_EVERY_SECONDS == 3600
    assert every["janitor"] == every["heartbeat"] == api.container.settings.worker_round_s


async def test_one_order_failing_neither_stops_the_round_nor_its_own_schedule(api: Api) -> None:
    breaker = api.container.payments.providers.primary.breaker
    orders = []
    for _ in range(2):
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        orders.append(await place(api, VISA))
        breaker.record_success()
    broken, fine = orders[0]["id"], orders[1]["id"]
    real = api.container.recheck.ask  # what the janitor asks the provider through

    async def ask(order: Order, *, cause: Cause) -> Any:
        if order.id == broken:
            raise RuntimeError("a bug in one order's path")
        return await real(order, cause=cause)

    api.container.recheck.ask = ask  # type: ignore[method-assign]
    clock = Clock()
    clock.advance(seconds=11)
    report = await janitor(api, clock).run_once(owner="w1")
    assert report.resolved == 1
    async with api.container.storage() as uow:
        failed, resolved = await uow.orders.get(broken), await uow.orders.get(fine)
    assert resolved is not None and resolved.state == "paid"
    assert failed is not None and failed.state == "payment_unknown"
    assert failed.checks == 1  # the failed check counted: the schedule moves on, escalates
