"""The Stripe sandbox delivers a burst of webhooks a few at a time, and every one of them.

Unbounded, a burst of charges queued hundreds of POSTs in the HTTP client's pool at once
(issue 20: the in-process sandbox spent more CPU queueing them than charging)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from orderguard.providers.stripe.sandbox import objects, webhooks
from orderguard.providers.stripe.sandbox.faults import FaultDice, load_profile
from orderguard.providers.stripe.sandbox.ledger import Ledger
from orderguard.providers.stripe.signing import SIGNATURE_HEADER

BURST = 60


async def test_a_burst_of_events_is_delivered_whole_never_more_than_the_bound_at_once(
    tmp_path: Path,
) -> None:
    ledger = Ledger(str(tmp_path / "ledger.db"))
    dispatcher = webhooks.WebhookDispatcher(
        ledger,
        url="http://shop.test/webhooks/stripe",
        secret="whsec_test",
        dice=FaultDice(1),
        profile=lambda: load_profile("none"),
    )
    in_flight, most, received = 0, 0, []

    async def shop(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)  # the shop takes a while to answer
        received.append(request.headers[SIGNATURE_HEADER])
        in_flight -= 1
        return httpx.Response(200)

    dispatcher.start()
    assert dispatcher._client is not None
    await dispatcher._client.aclose()
    dispatcher._client = httpx.AsyncClient(transport=httpx.MockTransport(shop))
    params = {"amount": 1000, "currency": "eur", "payment_method": "pm_card_visa"}
    events = [
        objects.event(
            "payment_intent.created",
            objects.payment_intent(params, intent_id=f"pi_{i}", created=1_700_000_000),
            created=1_700_000_000,
        )
        for i in range(BURST)
    ]
    for evt in events:
        ledger.add_event(evt)
    dispatcher.enqueue(ledger.events("pending"))
    try:
        for _ in range(500):
            if len(received) == BURST:
                break
            await asyncio.sleep(0.01)
    finally:
        await dispatcher.stop()
    assert len(received) == BURST  # every one, each signed
    assert 1 < most <= webhooks.MAX_IN_FLIGHT  # a few at a time, not one, not all
    assert {e["_delivery"]["state"] for e in ledger.events()} == {"delivered"}
