"""orderguard against a sandbox as hard as Stripe: saved 500s, a lagging search, late events.

When Stripe itself fails after charging, it saves its 500 under the Idempotency-Key and
replays it: retrying the key can never tell what happened, only asking can (retrieve,
search). Stripe's search lags writes, so "search found nothing" is never "not charged".
And Stripe sends ``payment_intent.created`` for every payment, which may arrive after the
result: the order never moves back for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.api.server import reserve_port, running_server
from orderguard.bootstrap import build_app, wire
from orderguard.config import Settings
from orderguard.providers.stripe.sandbox.server import run_sandbox
from orderguard.providers.stripe.sandbox.service import SandboxConfig
from orderguard.services.providers import Providers
from tests.conftest import open_storage
from tests.e2e.payment_harness import (
    THREE_DS,
    VISA,
    WEBHOOK_SECRET,
    BreakerClock,
    Sandbox,
    Shop,
    notes,
    open_shop,
    provider_slot,
    sandbox,
    states,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box: Sandbox) -> AsyncIterator[Shop]:
    async with open_shop(database_url, [box]) as running:
        yield running


async def advance_sandbox_clock(box: Sandbox, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=box.url) as http:
        (await http.post("/_sandbox/clock", json={"advance_s": seconds})).raise_for_status()


async def stripe_saves_a_500(box: Sandbox, how: str) -> None:
    """The next create charges, then Stripe fails and keeps its 500 under the key."""
    if how == "scripted":
        await box.script(status=500, type="api_error", after=True, saved=True)
    else:
        await box.set_faults(error_saved=1.0, limit=1)


@pytest.mark.parametrize("how", ["scripted", "fault"])
async def test_a_500_stripe_saved_is_unknown_and_recheck_learns_the_truth_by_asking(
    shop: Shop, box: Sandbox, how: str
) -> None:
    await stripe_saves_a_500(box, how)
    placed = await shop.placed(VISA)

    # our retry with the same key got the same 500 back, marked not worth repeating
    assert placed.answer["state"] == "payment_unknown"
    [attempt] = placed.answer["payment_attempts"]
    assert (attempt["state"], attempt["provider_ref"]) == ("unknown", None)
    [intent] = await box.intents(placed.id)
    assert len(await box.charges(placed.id)) == 1

    rechecked = await shop.recheck(placed.id)

    # only asking (search by order) can give this: the key would replay the 500 again
    assert rechecked["state"] == "paid"
    assert rechecked["payment_attempts"][0]["provider_ref"] == intent["id"]
    assert states(rechecked)[-1] == ("payment_unknown", "paid")
    assert len(await box.intents(placed.id)) == 1
    assert len(await box.charges(placed.id)) == 1


async def test_a_lagging_search_is_never_taken_for_not_charged(shop: Shop, box: Sandbox) -> None:
    await box.set_faults(search_lag_s=30.0)
    await stripe_saves_a_500(box, "scripted")
    placed = await shop.placed(VISA)
    assert placed.answer["state"] == "payment_unknown"

    # search does not see the intent yet; the key replays Stripe's saved 500: still unknown,
    # never failed (which would invite the shopper to pay again)
    during = await shop.recheck(placed.id)
    assert during["state"] == "payment_unknown"
    assert during["payment_attempts"][0]["state"] == "unknown"
    assert len(await box.intents(placed.id)) == 1
    assert len(await box.charges(placed.id)) == 1

    await advance_sandbox_clock(box, 30)  # the index caught up
    after = await shop.recheck(placed.id)

    assert after["state"] == "paid"
    [intent] = await box.intents(placed.id)
    assert after["payment_attempts"][0]["provider_ref"] == intent["id"]
    assert len(await box.charges(placed.id)) == 1


# --- late payment_intent.created, delivered by the sandbox itself ----------------------


@pytest.fixture
def port() -> int:
    return reserve_port()


@pytest.fixture
def hooked_box(tmp_path: Path, port: int) -> Iterator[Sandbox]:
    config = SandboxConfig(
        db_path=str(tmp_path / "hooked.db"),
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=f"http://127.0.0.1:{port}/v1/webhooks/hooked",
    )
    with run_sandbox(config) as url:
        yield Sandbox("hooked", url)


@pytest.fixture
async def hooked_shop(database_url: str, hooked_box: Sandbox, port: int) -> AsyncIterator[Shop]:
    settings = Settings(database_url=database_url, public_url=f"http://127.0.0.1:{port}")
    storage = await open_storage(database_url)
    container = wire(settings, storage, Providers([provider_slot(settings, hooked_box)]))
    try:
        async with (
            running_server(build_app(container=container), port=port) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield Shop(client, container, url, BreakerClock())
    finally:
        await container.close()


async def events_delivered(box: Sandbox, intent_id: str, count: int) -> list[dict[str, Any]]:
    """The intent's events once ``count`` of them were delivered (the shop answered 200)."""
    deadline = time.monotonic() + 30
    while True:
        events = [
            e
            for e in (await box.ledger())["events"]
            if e["data"]["object"].get("payment_intent", e["data"]["object"]["id"]) == intent_id
        ]
        if len(events) == count and all(e["_delivery"]["state"] == "delivered" for e in events):
            return events
        assert time.monotonic() < deadline, [(e["type"], e["_delivery"]) for e in events]
        await asyncio.sleep(0.05)


async def late_created_order(shop: Shop, box: Sandbox, method: str, events: int) -> Any:
    """Place an order whose ``payment_intent.created`` the sandbox delivers after the rest."""
    # every event waits 0.5 s; the first (created) is held back until after the next one
    await box.set_faults(webhook_reorder=1.0, webhook_delay=1.0, webhook_delay_ms=[500, 500])
    placed = await shop.placed(method)
    [intent] = await box.intents(placed.id)
    sent = await events_delivered(box, intent["id"], events)
    assert sent[0]["type"] == "payment_intent.created"
    assert "webhook_reordered" in await box.fault_kinds()
    return placed


async def after_the_late_event(shop: Shop, order_id: str, state: str) -> dict[str, Any]:
    """The order once the late event was applied: noted as ignored, or (wrongly) applied."""
    deadline = time.monotonic() + 30
    while True:
        detail = await shop.order(order_id)
        moved_back = any(before == state for before, _ in states(detail))
        if moved_back or any(n.startswith("ignored pending") for n in notes(detail)):
            return detail
        assert time.monotonic() < deadline, notes(detail)
        await asyncio.sleep(0.05)


async def test_a_late_created_event_from_the_sandbox_leaves_the_order_action_required(
    hooked_shop: Shop, hooked_box: Sandbox
) -> None:
    placed = await late_created_order(hooked_shop, hooked_box, THREE_DS, 2)
    assert placed.answer["state"] == "action_required"

    detail = await after_the_late_event(hooked_shop, placed.id, "action_required")
    assert states(detail)[-1] == ("payment_pending", "action_required")  # never left it
    assert detail["state"] == "action_required"
    assert any(n.startswith("ignored pending") for n in notes(detail))
    assert detail["next_action"] == placed.answer["next_action"]  # the link still works


async def test_a_late_created_event_from_the_sandbox_leaves_a_paid_order_paid(
    hooked_shop: Shop, hooked_box: Sandbox
) -> None:
    placed = await late_created_order(hooked_shop, hooked_box, VISA, 3)
    assert placed.answer["state"] == "paid"

    detail = await after_the_late_event(hooked_shop, placed.id, "paid")
    assert states(detail)[-1] == ("payment_pending", "paid")  # never left it
    assert detail["state"] == "paid"
    assert any(n.startswith("ignored pending") for n in notes(detail))
