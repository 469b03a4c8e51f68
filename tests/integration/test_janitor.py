"""The janitor: rechecks on schedule, resolves by asking, escalates when the schedule runs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.domain.schedule import RecheckSchedule
from orderguard.domain.states import OrderState
from orderguard.providers.base import (
    PaymentResult,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
)
from orderguard.services.abandon import cancel_abandoned
from orderguard.services.janitor import STUCK, Janitor, JanitorRound
from orderguard.storage.ports import OrderQuery
from tests.integration.conftest import Api
from tests.integration.test_payments_api import THREE_DS, VISA, charges, place


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def janitor(api: Api, clock: Clock, schedule: RecheckSchedule | None = None) -> Janitor:
    return Janitor(
        api.container.storage,
        api.container.recheck,
        schedule=schedule or RecheckSchedule(),
        clock=clock,
    )


async def _state(api: Api, order_id: str) -> dict[str, object]:
    detail: dict[str, object] = (await api.client.get(f"/v1/orders/{order_id}")).json()
    return detail


async def test_an_unknown_outcome_is_resolved_by_the_janitor_when_due(api: Api) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
    order = await place(api, VISA)
    clock = Clock()
    jan = janitor(api, clock)
    assert (await jan.run_once(owner="w1")).checked == 0  # the first wait is 10 s
    clock.advance(seconds=11)
    report = await jan.run_once(owner="w1")
    assert (report.checked, report.resolved) == (1, 1)
    detail = await _state(api, order["id"])
    assert detail["state"] == "paid"
    assert detail["timeline"][-1]["cause"] == "janitor"  # type: ignore[index]
    assert len(charges(api.provider, order["id"])) == 1


async def test_a_states_own_first_wait_is_honoured(api: Api) -> None:
    await place(api, THREE_DS)  # action_required: first recheck after 2 min
    clock = Clock()
    jan = janitor(api, clock)
    clock.advance(seconds=11)
    assert (await jan.run_once(owner="w1")).checked == 0
    assert (await jan.run_once(owner="w1")).checked == 0  # not even claimed again
    clock.advance(seconds=110)
    assert (await jan.run_once(owner="w1")).checked == 1


async def test_when_the_schedule_runs_out_the_order_is_flagged_once_and_still_watched(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"))
    order = await place(api, VISA)
    schedule = RecheckSchedule({OrderState.PAYMENT_UNKNOWN: (timedelta(seconds=10),) * 3})
    clock = Clock()
    jan = janitor(api, clock, schedule)
    asked: list[datetime] = []  # when the provider was asked, on the test's clock

    async def find_nothing(order_id: str) -> list[object]:
        asked.append(clock())
        raise ProviderUnavailable("the provider cannot tell")

    api.provider.find_payments = find_nothing  # type: ignore[assignment,method-assign]
    rounds: list[tuple[datetime, JanitorRound]] = []
    for _ in range(5):
        clock.advance(seconds=11)
        rounds.append((clock(), await jan.run_once(owner="w1")))
    detail = await _state(api, order["id"])
    async with api.container.storage() as uow:
        stored = await uow.orders.get(order["id"])
    assert stored is not None
    round_times = [at for at, _ in rounds]

    assert detail["state"] == "payment_unknown"  # never failed silently
    assert str(detail["flag_reason"]).startswith(STUCK)
    assert [r.escalated for _, r in rounds] == [0, 0, 1, 0, 0]  # flagged once, at the third
    flagged = [e for e in detail["timeline"] if e["kind"] == "flagged"]  # type: ignore[attr-defined]
    assert len(flagged) == 1 and flagged[0]["cause"] == "janitor"
    # still watched: the two rounds after the flag each asked the provider again
    assert [r.checked for _, r in rounds] == [1, 1, 1, 1, 1]
    assert asked == round_times
    assert (stored.checks, stored.last_checked_at) == (5, round_times[-1])
    assert stored.next_check_at == round_times[-1] + timedelta(seconds=10)

    del api.provider.find_payments  # the provider can tell again: the next round settles it
    clock.advance(seconds=11)
    assert (await jan.run_once(owner="w1")).resolved == 1
    assert (await _state(api, order["id"]))["state"] == "paid"
    assert len(charges(api.provider, order["id"])) == 1


async def test_the_unresolved_flag_clears_itself_with_an_entry_when_the_order_is_paid(
    api: Api,
) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
    order = await place(api, VISA)
    schedule = RecheckSchedule({OrderState.PAYMENT_UNKNOWN: (timedelta(seconds=10),) * 2})
    clock = Clock()
    jan = janitor(api, clock, schedule)
    find_payments = api.provider.find_payments

    async def find_nothing(order_id: str) -> list[object]:
        raise ProviderUnavailable("the provider cannot tell")

    api.provider.find_payments = find_nothing  # type: ignore[assignment,method-assign]
    for _ in range(3):
        clock.advance(seconds=11)
        await jan.run_once(owner="w1")
    flagged = await _state(api, order["id"])
    api.provider.find_payments = find_payments  # type: ignore[method-assign]
    clock.advance(seconds=11)
    await jan.run_once(owner="w1")
    paid = await _state(api, order["id"])
    async with api.container.storage() as uow:
        queue = await uow.orders.search(OrderQuery(limit=50, flagged=True))

    assert [f["reason"] for f in flagged["flags"]] == ["payment_unresolved"]  # type: ignore[index]
    assert paid["state"] == "paid" and paid["flag_reason"] is None
    [flag] = paid["flags"]  # type: ignore[misc]
    assert (flag["reason"], flag["cleared_by"]) == ("payment_unresolved", "janitor")
    last = paid["timeline"][-1]  # type: ignore[index]
    assert (last["kind"], last["to_state"], last["cause"]) == ("flag_cleared", "paid", "janitor")
    assert order["id"] not in [o.id for o in queue]


async def test_two_janitors_never_hold_the_same_order(api: Api) -> None:
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(4):
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        await place(api, VISA)
        breaker.record_success()  # lost answers count against the breaker; keep it closed
    clock = Clock()
    clock.advance(seconds=11)
    now = clock()
    async with api.container.storage() as uow:
        first = await uow.leases.claim_due_orders(
            RecheckSchedule().watched,
            now=now,
            first_due_before=now - timedelta(seconds=10),
            owner="a",
            until=now + timedelta(seconds=60),
            limit=2,
        )
        await uow.commit()
    report = await janitor(api, clock).run_once(owner="b")
    assert len(first) == 2 and report.checked == 2
    for order_id in first:
        assert (await _state(api, order_id))["state"] == "payment_unknown"


async def test_abandoned_orders_are_cancelled_but_not_those_waiting_for_a_provider(
    api: Api,
) -> None:
    never_paid = await place(api, None)
    declined = await place(api, "pm_card_chargeDeclined")
    breaker = api.container.payments.providers.primary.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    waiting = await place(api, VISA)
    later = Clock()
    later.advance(hours=25)
    storage = api.container.storage
    assert (
        await cancel_abandoned(
            storage, state=OrderState.RECEIVED, after=timedelta(hours=24), clock=later
        )
        == 1
    )
    assert (
        await cancel_abandoned(
            storage, state=OrderState.PAYMENT_FAILED, after=timedelta(hours=24), clock=later
        )
        == 1
    )
    assert (await _state(api, never_paid["id"]))["state"] == "cancelled"
    assert (await _state(api, declined["id"]))["state"] == "cancelled"
    assert (await _state(api, waiting["id"]))["state"] == "received"


async def test_an_order_that_moved_on_while_it_was_checked_is_left_as_it_is(api: Api) -> None:
    api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
    order = await place(api, VISA)
    clock = Clock()
    clock.advance(seconds=11)
    find_payments = api.provider.find_payments

    async def support_resolves_it_meanwhile(order_id: str) -> list[PaymentResult]:
        api.provider.find_payments = find_payments  # type: ignore[method-assign]
        # the janitor read the order when it claimed it; support settles it now
        assert (await api.client.post(f"/v1/orders/{order_id}/recheck", json={})).is_success
        return await find_payments(order_id)

    api.provider.find_payments = support_resolves_it_meanwhile  # type: ignore[method-assign]
    report = await janitor(api, clock).run_once(owner="w1")
    detail = await _state(api, order["id"])
    async with api.container.storage() as uow:
        stored = await uow.orders.get(order["id"])
    assert stored is not None

    assert (report.checked, report.resolved) == (1, 0)  # asked, but support resolved it
    assert detail["state"] == "paid"
    assert [e["cause"] for e in detail["timeline"]].count("janitor") == 0  # type: ignore[attr-defined]
    assert (stored.checks, stored.next_check_at) == (0, None)  # no janitor schedule on it
    assert len(charges(api.provider, order["id"])) == 1
    now = clock()
    async with api.container.storage() as uow:  # and its lease was given back
        assert await uow.leases.claim_due_orders(
            frozenset({OrderState.PAID}),
            now=now,
            first_due_before=now,
            owner="w2",
            until=now + timedelta(seconds=60),
            limit=5,
        ) == [order["id"]]


async def test_a_stop_mid_round_settles_the_check_under_way_and_gives_back_the_rest(
    api: Api,
) -> None:
    import asyncio

    breaker = api.container.payments.providers.primary.breaker
    for _ in range(3):
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        await place(api, VISA)
        breaker.record_success()
    clock = Clock()
    clock.advance(seconds=11)
    stop = asyncio.Event()
    find_payments = api.provider.find_payments
    asked: list[str] = []

    async def stop_while_asked(order_id: str) -> list[PaymentResult]:
        asked.append(order_id)
        stop.set()  # SIGTERM arrives while the first order is asked about
        await asyncio.sleep(0.05)  # the round claims the next order meanwhile
        return await find_payments(order_id)

    api.provider.find_payments = stop_while_asked  # type: ignore[method-assign]
    one_at_a_time = Janitor(
        api.container.storage,
        api.container.recheck,
        schedule=RecheckSchedule(),
        concurrency=1,
        clock=clock,
    )
    report = await one_at_a_time.run_once(owner="w1", stop=stop)
    api.provider.find_payments = find_payments  # type: ignore[method-assign]

    assert (report.checked, report.resolved) == (1, 1) and len(asked) == 1
    assert (await _state(api, asked[0]))["state"] == "paid"  # the check under way: settled
    rest = await janitor(api, clock).run_once(owner="w2")  # nothing else is held by w1
    assert (rest.checked, rest.resolved) == (2, 2)


async def test_a_stop_request_gives_back_the_orders_not_yet_checked(api: Api) -> None:
    import asyncio

    breaker = api.container.payments.providers.primary.breaker
    for _ in range(3):
        api.provider.fail_next(ProviderOutcomeUnknown("reset"), after_effect=True)
        await place(api, VISA)
        breaker.record_success()
    clock = Clock()
    clock.advance(seconds=11)
    stop = asyncio.Event()
    stop.set()
    report = await janitor(api, clock).run_once(owner="w1", stop=stop)
    assert report.checked == 0
    assert (await janitor(api, clock).run_once(owner="w2")).checked == 3  # nothing held
