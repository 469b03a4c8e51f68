"""The demo's planted defects: each is wired around a part of the service by the one hook in
``bootstrap.wire``, only when the setting says so, and does the harm it is named for (fast,
on memory storage and the in-memory provider; ``tests/e2e/test_demo.py`` shows the demo
catching each). Production refuses the setting."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from orderguard.bootstrap import Container, wire
from orderguard.config import PLANTED_DEFECTS, ConfigError, Settings
from orderguard.demo.defects import (
    DEFECTS,
    LEFT_OPEN,
    AnswerFirst,
    ExpiryWithoutClose,
    ForgetfulKeys,
    HiddenSuccess,
    ShortCharges,
    ShortRefunds,
    UncheckedWalletAmounts,
    WrappedStorage,
    short_amount,
)
from orderguard.domain.events import EntryKind
from orderguard.domain.order import OrderLine
from orderguard.domain.states import OrderState
from orderguard.production import production_problems
from orderguard.providers import registry
from orderguard.providers.base import ChargeRequest, PaymentOutcome
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory import InMemoryProvider
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.intake import PlaceOrder
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.storage.memory import InMemoryStorage
from tests.factories import customer

#: Which invariant of the demo each defect must break, written out here on purpose.
BREAKS = {
    "answer_first": "acknowledged_orders_lost",
    "forget_keys": "checkouts_with_two_orders",
    "recharge_unknown": "orders_charged_twice",
    "success_ignored": "charges_without_an_order",
    "janitor_asleep": "orders_stuck_unflagged",
    "charge_amount": "paid_amount_differs",
    "silent_paid": "timeline_disagrees_with_state",
    "refund_amount": "refunded_amount_differs",
    "pay_again_old_method": "shoppers_misled",
    "three_ds_return_token": "shoppers_misled",
    "alipay_amount_unchecked": "paid_amount_differs",
    "wechatpay_expiry_without_close": "shoppers_misled",
}


def _wired(defect: str | None = None) -> tuple[Container, InMemoryProvider, InMemoryStorage]:
    memory, storage = InMemoryProvider(), InMemoryStorage()
    providers = Providers([ProviderSlot(memory, CircuitBreaker(failure_threshold=3))])
    settings = Settings(public_url="https://shop.example", planted_defect=defect)
    return wire(settings, storage, providers), memory, storage


def _command(
    key: str | None = None, *, method: str | None = "pm_card_visa", reference: str | None = None
) -> PlaceOrder:
    return PlaceOrder(
        request=KeyedRequest("local", key or str(uuid.uuid4()), "same-body"),
        currency="EUR",
        lines=[OrderLine("SKU", "Thing", 1, 4848)],
        customer=customer(),
        merchant_reference=reference,
        payment_method=method,
    )


def _charge(amount: int = 4848, key: str = "pay-att_1") -> ChargeRequest:
    return ChargeRequest("att_1", "ord_1", amount, "EUR", "pm_card_visa", "u", key)


# -- the registry and the hook --------------------------------------------------------------


def test_every_defect_is_a_setting_and_breaks_the_invariant_it_is_named_for() -> None:
    assert set(PLANTED_DEFECTS) == set(DEFECTS) == set(BREAKS)
    assert {name: d.breaks for name, d in DEFECTS.items()} == BREAKS


def test_without_the_setting_the_service_is_wired_with_its_own_parts() -> None:
    container, memory, storage = _wired()
    assert container.payments.providers.primary.provider is memory
    assert container.storage is storage
    assert not isinstance(container.intake, AnswerFirst)


@pytest.mark.parametrize(
    ("defect", "wrapper"),
    [
        ("refund_amount", ShortRefunds),
        ("charge_amount", ShortCharges),
        ("recharge_unknown", ForgetfulKeys),
        ("success_ignored", HiddenSuccess),
    ],
)
def test_a_provider_defect_wraps_the_provider_every_service_uses(
    defect: str, wrapper: type[ShortRefunds]
) -> None:
    container, memory, storage = _wired(defect)
    planted = container.payments.providers.primary.provider
    assert isinstance(planted, wrapper) and planted.inner is memory
    assert planted.name == "memory"  # attempts are stored under the same provider name
    assert container.storage is storage  # the storage is left alone


@pytest.mark.parametrize(
    ("defect", "wallet", "wrapper"),
    [
        ("alipay_amount_unchecked", "alipay", UncheckedWalletAmounts),
        ("wechatpay_expiry_without_close", "wechatpay", ExpiryWithoutClose),
    ],
)
def test_a_wallet_defect_wraps_that_wallet_alone_and_keeps_each_accounts_methods(
    defect: str, wallet: str, wrapper: type[UncheckedWalletAmounts]
) -> None:
    card, other = InMemoryProvider(name="memory"), InMemoryProvider(name=wallet)
    wallet_profile = registry.plugin(wallet).profile
    providers = Providers(
        [
            ProviderSlot(card, CircuitBreaker(failure_threshold=3)),
            ProviderSlot(other, CircuitBreaker(failure_threshold=3), profile=wallet_profile),
        ]
    )
    settings = Settings(public_url="https://shop.example", planted_defect=defect)
    slots = wire(settings, InMemoryStorage(), providers).payments.providers.slots
    assert slots[0].provider is card
    assert isinstance(slots[1].provider, wrapper) and slots[1].provider.inner is other
    assert [s.profile for s in slots] == [providers.slots[0].profile, wallet_profile]


async def test_unchecked_wallet_amounts_ask_less_and_answer_without_an_amount() -> None:
    memory = InMemoryProvider()
    planted = UncheckedWalletAmounts(memory)
    made = await planted.create_payment(_charge(4848))
    # what the provider holds is the short amount; the planted answer carries no amount
    assert (await memory.retrieve_payment(made.provider_ref)).amount == short_amount(4848) < 4848
    assert (await planted.retrieve_payment(made.provider_ref)).amount is None


async def test_expiry_without_close_leaves_the_payment_open_and_never_asks_the_wallet() -> None:
    memory = InMemoryProvider()
    planted = ExpiryWithoutClose(memory)
    made = await planted.create_payment(_charge())
    answer = await planted.cancel_payment(made.provider_ref)
    assert answer.outcome is PaymentOutcome.FAILED
    # the wallet was never told: the payment stands as it was made
    assert (await memory.retrieve_payment(made.provider_ref)).outcome is made.outcome
    assert LEFT_OPEN >= timedelta(hours=1)


@pytest.mark.parametrize("defect", ["forget_keys", "silent_paid"])
async def test_a_storage_defect_reaches_the_services_but_not_the_container(defect: str) -> None:
    """The services get the broken storage; the container keeps the real one (the worker's
    heartbeats and the outbox need it as it is)."""
    container, _, storage = _wired(defect)
    assert container.storage is storage
    answer = await container.intake.place(_command())
    async with storage() as uow:  # what the services stored went to the real storage
        assert await uow.orders.get(answer.order_id) is not None
    assert isinstance(container.janitor._storage, WrappedStorage)
    assert container.janitor._storage.inner is storage


# -- what each defect does ----------------------------------------------------------------


async def test_answer_first_answers_every_fifth_key_with_an_order_never_stored() -> None:
    container, memory, storage = _wired("answer_first")
    keys = [str(uuid.uuid4()) for _ in range(10)]
    answers = [await container.intake.place(_command(k)) for k in keys]
    assert all(a.status == 201 and not a.replayed for a in answers)
    async with storage() as uow:
        stored = [await uow.orders.get(a.order_id) is not None for a in answers]
    assert stored == [False, True, True, True, True] * 2
    again = await container.intake.place(_command(keys[0]))
    assert (again.order_id, again.replayed) == (answers[0].order_id, True)
    retried = await container.intake.place(_command(keys[1]))  # a stored one: replayed
    assert (retried.order_id, retried.replayed) == (answers[1].order_id, True)
    eleventh = await container.intake.place(_command())  # retries are no new keys
    async with storage() as uow:
        assert await uow.orders.get(eleventh.order_id) is None
    assert len(memory.payments) == 8  # the lost orders were never charged either


@pytest.mark.parametrize(("defect", "orders"), [(None, 1), ("forget_keys", 2)])
async def test_forget_keys_makes_a_retried_checkout_without_reference_two_orders(
    defect: str | None, orders: int
) -> None:
    container, _, _ = _wired(defect)
    first = await container.intake.place(_command("k-1", method=None))
    again = await container.intake.place(_command("k-1", method=None))
    assert len({first.order_id, again.order_id}) == orders
    assert again.replayed is (orders == 1)


async def test_silent_paid_stores_the_move_to_paid_without_its_timeline_entry() -> None:
    container, _, storage = _wired("silent_paid")
    answer = await container.intake.place(_command())
    async with storage() as uow:
        order = await uow.orders.get(answer.order_id)
        timeline = await uow.orders.timeline(answer.order_id)
    assert order is not None and order.state is OrderState.PAID
    moves = [e.to_state for e in timeline if e.kind is EntryKind.STATE_CHANGED]
    assert moves == [OrderState.RECEIVED, OrderState.PAYMENT_PENDING]


async def test_janitor_asleep_never_finds_an_order_due_nor_its_schedule_run_out() -> None:
    container, _, _ = _wired("janitor_asleep")
    schedule = container.janitor.schedule
    assert schedule.watched == {
        OrderState.PAYMENT_UNKNOWN,
        OrderState.PAYMENT_PENDING,
        OrderState.ACTION_REQUIRED,
    }
    assert schedule.shortest_wait >= timedelta(days=3000)
    awake, _, _ = _wired()
    assert awake.janitor.schedule.shortest_wait < timedelta(hours=1)


async def test_short_charges_charge_less_and_answer_the_amount_asked() -> None:
    memory = InMemoryProvider()
    answer = await ShortCharges(memory).create_payment(_charge(4848))
    assert answer.outcome is PaymentOutcome.SUCCEEDED
    assert answer.amount == 4848  # what orderguard is told
    assert answer.provider_ref is not None
    found = await memory.retrieve_payment(answer.provider_ref)
    assert found.amount == 4368  # what the shopper was charged: a tenth less, in tens


async def test_forgetful_keys_charge_a_resent_request_again_and_find_nothing() -> None:
    memory = InMemoryProvider()
    broken = ForgetfulKeys(memory)
    first = await broken.create_payment(_charge())
    again = await broken.create_payment(_charge())
    assert first.provider_ref != again.provider_ref
    assert len(await memory.find_payments("ord_1")) == 2  # two charges made
    assert await broken.find_payments("ord_1") == []
    honest = await memory.create_payment(_charge(key="pay-att_2"))
    assert (await memory.create_payment(_charge(key="pay-att_2"))) == honest


async def test_hidden_success_reports_a_success_as_still_processing() -> None:
    memory = InMemoryProvider()
    paid = await memory.create_payment(_charge())
    assert paid.outcome is PaymentOutcome.SUCCEEDED and paid.provider_ref is not None
    broken = HiddenSuccess(memory)
    assert (await broken.retrieve_payment(paid.provider_ref)).outcome is PaymentOutcome.PENDING
    assert [r.outcome for r in await broken.find_payments("ord_1")] == [PaymentOutcome.PENDING]


@pytest.mark.parametrize(
    ("asked", "sent"), [(3238, 2918), (1610, 1450), (10000, 9000), (20, 10), (10, 10), (2, 2)]
)
def test_the_short_amount_is_a_tenth_less_in_whole_tens(asked: int, sent: int) -> None:
    assert short_amount(asked) == sent


async def test_short_refunds_refund_less_and_answer_the_amount_asked() -> None:
    memory = InMemoryProvider()
    paid = await memory.create_payment(_charge(4848))
    assert paid.provider_ref is not None
    broken = ShortRefunds(memory)

    answer = await broken.refund(paid.provider_ref, amount=1610, idempotency_key="re-1")

    assert answer.amount == 1610  # what orderguard is told, and records
    assert [r.amount for r in memory.refunds] == [1450]  # what the provider gave back
    whole = await broken.refund(paid.provider_ref, amount=None, idempotency_key="re-2")
    assert whole.amount == 4848 - 1450  # "all that is left" is passed through untouched


# -- the setting ---------------------------------------------------------------------------


def test_the_defect_is_a_known_setting_and_production_refuses_it() -> None:
    with pytest.raises(ConfigError, match="planted_defect must be one of"):
        Settings.load(env={"ORDERGUARD_PLANTED_DEFECT": "refund_amounts"})
    loaded = Settings.load(env={"ORDERGUARD_PLANTED_DEFECT": "refund_amount"})
    assert loaded.planted_defect == "refund_amount"
    settings = Settings(
        env="production",
        stripe_api_key="sk_live_shop",
        stripe_webhook_secret="whsec_k3mY7qP0vR2sT9wX4zB6nD8fH1jL5",
        public_url="https://shop.example",
        planted_defect="refund_amount",
    )
    [problem] = production_problems(settings, active_api_keys=1)
    assert (problem.setting, problem.problem) == (
        "ORDERGUARD_PLANTED_DEFECT",
        "is set (refund_amount)",
    )
