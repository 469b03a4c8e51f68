"""Failing over between two sandbox providers through their circuit breakers (G3, G5).

"sandbox-a" is the primary, "sandbox-b" the secondary; each runs on its own port with its
own ledger. An outage at a provider is every API call answered 503; after our retries the
charge's outcome is unknown and counts towards opening that provider's breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orderguard.providers.breaker import BreakerState, CircuitBreaker
from orderguard.services.payments import WAITING_NOTE
from orderguard.services.waiting import charge_waiting
from tests.e2e.payment_harness import (
    VISA,
    Sandbox,
    Shop,
    assert_client_retry_changes_nothing,
    open_shop,
    sandbox,
    states,
    transitions,
)

pytestmark = pytest.mark.timeout(60)

THRESHOLD = 2
COOL_DOWN_S = 30.0
FAILOVER = "(failover: sandbox-a circuit is open)"


@pytest.fixture
def box_a(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox-a") as running:
        yield running


@pytest.fixture
def box_b(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox-b") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box_a: Sandbox, box_b: Sandbox) -> AsyncIterator[Shop]:
    async with open_shop(
        database_url,
        [box_a, box_b],
        breaker_threshold=THRESHOLD,
        breaker_cool_down_s=COOL_DOWN_S,
    ) as running:
        yield running


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state now (a call, so type checkers do not narrow it between reads)."""
    return breaker.state


def past_cool_down(shop: Shop) -> None:
    """Let the breakers' cool-down pass (on their clock: no sleeping, no race with load)."""
    shop.breaker_clock.advance(COOL_DOWN_S + 0.1)


async def test_an_outage_at_the_primary_fails_over_and_back(
    shop: Shop, box_a: Sandbox, box_b: Sandbox
) -> None:
    breaker_a = shop.slot("sandbox-a").breaker
    await box_a.outage(600)

    # Orders fail at A (outcome unknown) until its breaker opens.
    failed = []
    for n in range(1, THRESHOLD + 1):
        placed = await shop.placed(VISA)
        assert placed.answer["state"] == "payment_unknown"
        assert placed.answer["payment_attempts"][0]["provider"] == "sandbox-a"
        assert breaker_a.consecutive_failures == n
        failed.append(placed)
    assert state_of(breaker_a) is BreakerState.OPEN

    # New orders are charged at B, and their timeline says why.
    moved = await shop.placed(VISA)
    assert moved.answer["state"] == "paid"
    [attempt] = moved.answer["payment_attempts"]
    assert (attempt["provider"], attempt["state"]) == ("sandbox-b", "succeeded")
    [charge] = await box_b.charges(moved.id)
    assert charge["payment_intent"] == attempt["provider_ref"]
    assert await box_a.intents(moved.id) == []
    detail = await shop.order(moved.id)
    pending = transitions(detail)[1]
    assert (pending["to_state"], pending["cause"]) == ("payment_pending", "api")
    assert pending["note"] == f"attempt 1 sent to sandbox-b {FAILOVER}"
    assert states(detail)[-1] == ("payment_pending", "paid")
    assert shop.slot("sandbox-b").breaker.state is BreakerState.CLOSED
    await assert_client_retry_changes_nothing(shop, moved, box_a, box_b)

    # A comes back; after the cool-down the next order probes A and is charged there.
    await box_a.outage(0)
    assert state_of(breaker_a) is BreakerState.OPEN
    past_cool_down(shop)
    assert state_of(breaker_a) is BreakerState.HALF_OPEN
    back = await shop.placed(VISA)
    assert back.answer["state"] == "paid"
    [attempt] = back.answer["payment_attempts"]
    assert attempt["provider"] == "sandbox-a"
    assert len(await box_a.charges(back.id)) == 1
    assert await box_b.intents(back.id) == []
    assert state_of(breaker_a) is BreakerState.CLOSED
    assert breaker_a.consecutive_failures == 0
    note = transitions(await shop.order(back.id))[1]["note"]
    assert note == "attempt 1 sent to sandbox-a"

    # The orders caught by the outage are resolved at A by asking, each charged once.
    for placed in failed:
        rechecked = await shop.recheck(placed.id)
        assert rechecked["state"] == "paid"
        assert rechecked["payment_attempts"][0]["provider"] == "sandbox-a"
        assert len(await box_a.charges(placed.id)) == 1
        assert await box_b.intents(placed.id) == []
        await assert_client_retry_changes_nothing(shop, placed, box_a, box_b)


async def test_with_every_provider_down_an_order_waits_and_is_charged_later(
    shop: Shop, box_a: Sandbox, box_b: Sandbox
) -> None:
    breaker_a, breaker_b = shop.slot("sandbox-a").breaker, shop.slot("sandbox-b").breaker
    await box_a.outage(600)
    await box_b.outage(600)
    # THRESHOLD orders open A's breaker, THRESHOLD more open B's.
    caught = [await shop.placed(VISA) for _ in range(2 * THRESHOLD)]
    assert [p.answer["state"] for p in caught] == ["payment_unknown"] * 2 * THRESHOLD
    assert [p.answer["payment_attempts"][0]["provider"] for p in caught] == (
        ["sandbox-a"] * THRESHOLD + ["sandbox-b"] * THRESHOLD
    )
    assert (state_of(breaker_a), state_of(breaker_b)) == (BreakerState.OPEN, BreakerState.OPEN)
    calls_a, calls_b = len(await box_a.fault_log()), len(await box_b.fault_log())

    waiting = await shop.placed(VISA)

    assert waiting.answer["state"] == "received"
    assert waiting.answer["payment_attempts"] == []
    detail = await shop.order(waiting.id)
    assert states(detail) == [(None, "received")]
    [entry] = [e for e in detail["timeline"] if e["kind"] == "note"]
    assert (entry["note"], entry["cause"], entry["to_state"]) == (WAITING_NOTE, "api", "received")
    # No provider was even called for it.
    assert (len(await box_a.fault_log()), len(await box_b.fault_log())) == (calls_a, calls_b)
    assert await box_a.intents(waiting.id) == await box_b.intents(waiting.id) == []
    await assert_client_retry_changes_nothing(shop, waiting, box_a, box_b)
    # While the breakers are still open, the janitor leaves it waiting.
    assert await charge_waiting(shop.container.storage, shop.container.payments) == 0
    assert (await shop.order(waiting.id))["state"] == "received"

    await box_a.outage(0)
    await box_b.outage(0)
    past_cool_down(shop)
    sent = await charge_waiting(shop.container.storage, shop.container.payments)

    assert sent == 1
    detail = await shop.order(waiting.id)
    assert detail["state"] == "paid"
    [attempt] = detail["payment_attempts"]
    assert (attempt["provider"], attempt["state"], attempt["method"]) == (
        "sandbox-a",
        "succeeded",
        VISA,
    )
    [charge] = await box_a.charges(waiting.id)
    assert charge["payment_intent"] == attempt["provider_ref"]
    assert await box_b.intents(waiting.id) == []
    assert state_of(breaker_a) is BreakerState.CLOSED
    moves = transitions(detail)
    assert [(m["from_state"], m["to_state"], m["cause"]) for m in moves] == [
        (None, "received", "api"),
        ("received", "payment_pending", "janitor"),
        ("payment_pending", "paid", "janitor"),
    ]
    assert moves[1]["note"] == "attempt 1 sent to sandbox-a"
    # Nothing else is waiting, and a second run charges nothing again.
    assert await charge_waiting(shop.container.storage, shop.container.payments) == 0
    assert len(await box_a.charges(waiting.id)) == 1
    await assert_client_retry_changes_nothing(shop, waiting, box_a, box_b)
