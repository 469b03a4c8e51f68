"""Wallet payments through the real app while the wallet's sandbox drops, duplicates and
reorders its notifications and sends them before its query sees the payment: every order
ends right against the sandbox's ledger (exactly one paid order per paid trade, none
lost) once the recheck the janitor runs has asked about the orders still open.

The shop, the wallet and their sandbox are :mod:`.test_wallet_payments`'; every
notification the sandbox sends is relayed to the shop as it arrives."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from orderguard.domain.events import Cause
from tests.integration.test_wallet_payments import (
    TOTAL_FEN,
    Shop,
    _action_url,
    _ref,
    _states,
    notifications,
    shop,
    wallet,
    wallet_keys,
)

__all__ = ["notifications", "shop", "wallet", "wallet_keys"]  # the fixtures, by name

#: The notification faults (the sandbox's seed is 0: the same faults on every run).
FAULTS = {
    "notify_drop": 0.35,
    "notify_duplicate": 0.4,
    "notify_reorder": 0.3,
    "notify_before_query": 0.4,
    "before_query_s": 0.5,
}
#: Orders placed, and how many of them the shopper pays.
ORDERS, PAID = 7, 6


async def _sandbox(shop: Shop, method: str, path: str, **body: Any) -> Any:
    async with httpx.AsyncClient(base_url=shop.wallet.sandbox, verify=False) as admin:
        answer = await admin.request(method, path, **({"json": body} if body else {}))
    answer.raise_for_status()
    return answer.json()


async def _relay(shop: Shop, stop: asyncio.Event) -> int:
    """Deliver each notification the sandbox sent to the shop as it arrives (duplicates
    and all, in their order); how many were delivered."""
    sent = 0
    received = shop.notifications.received
    while not (stop.is_set() and sent == len(received)):
        if sent < len(received):
            body, headers = received[sent]
            shop.wallet.accepted(await shop.deliver(body, headers))
            sent += 1
        else:
            await asyncio.sleep(0.01)
    return sent


async def _all_sent(shop: Shop, timeout_s: float = 10.0) -> int:
    """Wait until every copy of every notification the sandbox did not drop arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        book = await _sandbox(shop, "GET", "/ledger")
        copies = [
            0 if "dropped" in n["faults"] else 1 + ("duplicated" in n["faults"])
            for n in book["notifications"]
        ]
        if len(copies) == PAID and sum(copies) == len(shop.notifications.received):
            return sum(copies)
        assert time.monotonic() < deadline, f"{book['notifications']}"
        await asyncio.sleep(0.05)


async def test_under_notification_faults_every_order_ends_right_against_the_ledger(
    shop: Shop,
) -> None:
    await _sandbox(shop, "POST", "/_sandbox/faults", **FAULTS)
    orders = [await shop.place() for _ in range(ORDERS)]
    stop = asyncio.Event()
    relay = asyncio.create_task(_relay(shop, stop))
    for order in orders[:PAID]:
        await shop.wallet.pays(_ref(order), _action_url(shop, order))
    expected = await _all_sent(shop)
    stop.set()
    assert await relay == expected
    injected = (await _sandbox(shop, "GET", "/_sandbox/faults"))["counts"]
    assert {"notify_drop", "notify_duplicate", "notify_reorder", "notify_before_query"} <= set(
        injected
    ), injected

    states = [(await shop.order(o["id"]))["state"] for o in orders[:PAID]]
    assert "action_required" in states  # a dropped notification left its order open
    await asyncio.sleep(FAULTS["before_query_s"])
    for order in orders:  # what the janitor does for each order still open
        await shop.container.recheck.order(order["id"], cause=Cause.JANITOR)

    for number, order in enumerate(orders):
        found = await shop.order(order["id"])
        paid_fen = await shop.wallet.paid_fen(_ref(order))
        if number < PAID:
            assert (found["state"], paid_fen) == ("paid", [TOTAL_FEN]), found["timeline"]
            assert _states(found).count("paid") == 1  # a duplicate paid it once
        else:
            assert (found["state"], paid_fen) == ("action_required", [])


async def test_a_query_answering_system_error_leaves_the_order_open_never_failed(
    shop: Shop,
) -> None:
    order = await shop.place()
    await shop.wallet.pays(_ref(order), _action_url(shop, order))
    await shop.notifications.first()  # sent by the wallet, never delivered to the shop
    await _sandbox(shop, "POST", "/_sandbox/faults", query_system_error=1)
    await shop.container.recheck.order(order["id"], cause=Cause.JANITOR)
    found = await shop.order(order["id"])
    assert found["state"] == "action_required"
    assert found["payment_attempts"][0]["state"] not in ("failed", "succeeded")
    await _sandbox(shop, "POST", "/_sandbox/faults", profile="none")
    await shop.container.recheck.order(order["id"], cause=Cause.JANITOR)
    assert (await shop.order(order["id"]))["state"] == "paid"
    assert await shop.wallet.paid_fen(_ref(order)) == [TOTAL_FEN]


async def test_a_payment_landing_while_the_close_is_processed_pays_the_order(
    shop: Shop,
) -> None:
    order = await shop.place()
    await shop.wallet.opens(_ref(order), _action_url(shop, order))
    await _sandbox(shop, "POST", "/_sandbox/faults", close_race=1)
    assert await shop.expire() == 0
    found = await shop.order(order["id"])
    assert found["state"] == "paid" and "cancelled" not in _states(found)
    assert await shop.wallet.paid_fen(_ref(order)) == [TOTAL_FEN]
    injected = (await _sandbox(shop, "GET", "/_sandbox/faults"))["counts"]
    assert injected == {"close_race": 1}
