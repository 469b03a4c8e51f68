"""The sweep's questions to a provider that cannot list its charges are bounded: a batch
of cancelled orders per sweep, going on where the last one stopped, and a pace per second
(the in-memory provider declaring a wallet's capabilities, the in-memory storage)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import ChargeRequest
from orderguard.providers.breaker import CircuitBreaker
from orderguard.providers.memory.provider import InMemoryProvider
from orderguard.providers.profile import CARD_PROFILE, ProviderProfile
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.sweep import MAX_REFUND_KEY, refund_key
from orderguard.services.wallet_sweep import TradeQueries
from orderguard.storage.memory import InMemoryStorage
from tests.factories import new_order

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
#: A card provider's profile, but answering by reference only, as the wallets do.
QUERY_ONLY = replace(
    CARD_PROFILE,
    capabilities=replace(
        CARD_PROFILE.capabilities, list_recent_charges=False, find_by_order_id=False
    ),
)


def providers(provider: InMemoryProvider, profile: ProviderProfile = QUERY_ONLY) -> Providers:
    return Providers([ProviderSlot(provider, CircuitBreaker(), profile=profile)])


async def cancelled_and_paid(
    storage: InMemoryStorage, provider: InMemoryProvider, minute: int
) -> tuple[Order, str]:
    """An order cancelled at ``T0 + minute`` whose one attempt was charged all the same."""
    order = new_order(at=T0)
    paid = await provider.create_payment(
        ChargeRequest(
            attempt_id=f"pay_{minute}",
            order_id=order.id,
            amount=order.total.amount,
            currency=order.currency,
            method="pm_card_visa",
            return_url="https://shop.example/return",
            idempotency_key=f"orderguard-pay_{minute}",
        )
    )
    assert paid.provider_ref is not None
    at = T0 + timedelta(minutes=minute)
    order.move_to(OrderState.CANCELLED, cause=Cause.JANITOR, at=at)
    order.attempts.append(
        PaymentAttempt(
            id=f"pay_{minute}",
            order_id=order.id,
            seq=1,
            provider="memory",
            method="pm_card_visa",
            amount=order.total.amount,
            currency=order.currency,
            idempotency_key=f"orderguard-pay_{minute}",
            created_at=at,
            updated_at=at,
            state=AttemptState.FAILED,
            provider_ref=paid.provider_ref,
        )
    )
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    return order, paid.provider_ref


async def test_each_sweep_asks_about_one_batch_and_the_next_goes_on_from_there() -> None:
    storage, provider = InMemoryStorage(), InMemoryProvider()
    made = [await cancelled_and_paid(storage, provider, minute) for minute in (1, 2, 3)]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    queries = TradeQueries(
        storage,
        providers(provider),
        batch=2,
        per_second=10.0,
        sleep=sleep,
    )
    rounds = [await queries.paid_trades(since=T0, resolved=set()) for _ in range(3)]
    seen = [[charge.order_id for _, charge in found.found] for found in rounds]
    ids = [order.id for order, _ in made]
    assert seen == [ids[:2], ids[2:], ids[:2]]  # the third sweep starts over
    assert [found.asked for found in rounds] == [2, 1, 2]
    assert all(charge.amount == made[0][0].total.amount for _, charge in rounds[0].found)
    assert len(waits) == 4 and all(0.05 < w <= 0.1 for w in waits)  # 10 a second at most


async def test_a_trade_resolved_before_or_an_order_outside_the_window_is_not_asked_about() -> None:
    storage, provider = InMemoryStorage(), InMemoryProvider()
    (_, old), (_, resolved), (kept, _) = [
        await cancelled_and_paid(storage, provider, minute) for minute in (1, 20, 30)
    ]
    queries = TradeQueries(storage, providers(provider))
    found = await queries.paid_trades(
        since=T0 + timedelta(minutes=10), resolved={("memory", resolved)}
    )
    assert [charge.order_id for _, charge in found.found] == [kept.id]
    assert found.asked == 1
    assert old not in {charge.provider_ref for _, charge in found.found}


async def test_a_provider_that_lists_its_charges_is_never_asked_trade_by_trade() -> None:
    storage, provider = InMemoryStorage(), InMemoryProvider()
    await cancelled_and_paid(storage, provider, 1)
    queries = TradeQueries(storage, providers(provider, CARD_PROFILE))
    found = await queries.paid_trades(since=T0, resolved=set())
    assert (found.asked, found.found) == (0, [])


def test_a_sweep_refund_key_is_the_charges_own_and_fits_every_wallet() -> None:
    card = "pi_3QxYzAbCdEfGhIjKlMnOpQrS"
    assert refund_key("after_cancel", card) == f"orderguard-after-cancel-{card}"  # as before
    alipay = "orderguard_pay_01KBQ5T7Y0V4K3M2N1P0Q9R8S7"  # 41 characters: 65 with the prefix
    key = refund_key("after_cancel", alipay)
    assert len(key) <= MAX_REFUND_KEY
    assert key == refund_key("after_cancel", alipay)  # a repeat sends the same key
    assert key != refund_key("after_cancel", alipay[:-1] + "X")
    assert key != refund_key("duplicate", alipay)
