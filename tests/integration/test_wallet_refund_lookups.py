"""Wallet refunds whose news was lost, settled by the refund check, on PostgreSQL against
each wallet's own sandbox (its ledger the oracle): WeChat Pay's refund ends while its
notification is dropped by the sandbox's ``notify_drop`` fault; Alipay's refund is made
while its answer is lost (``timeout_after``). A refund query answering ``SYSTEM_ERROR``
(``query_system_error``) leaves the refund pending, never failed, until a later lookup.

The shop and the wallets are :mod:`.test_wallet_payments`', on PostgreSQL here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orderguard.bootstrap import build_app, slot, wire
from orderguard.config import Settings
from orderguard.domain.events import Cause
from orderguard.providers import registry
from orderguard.services.refund_check import RefundCheck
from tests.conftest import LOCAL_URL, open_storage
from tests.integration.test_wallet_payments import (
    EXPIRY,
    TOTAL_FEN,
    LastMoment,
    Notifications,
    Shop,
    Wallet,
    _action_url,
    _ref,
    notifications,
    wallet,
    wallet_keys,
)

__all__ = ["notifications", "wallet", "wallet_keys"]  # the fixtures, by name

#: Past the refund check's first wait: the first lookup is due.
DUE = timedelta(minutes=6)
#: The adapter's read timeout here: an answer held past it is lost.
READ_TIMEOUT_S = 1.0


@pytest.fixture
async def pg_shop(
    pg_url: str, wallet: Wallet, notifications: tuple[Notifications, str]
) -> AsyncIterator[Shop]:
    settings = Settings(
        public_url="https://shop.example",
        action_expiry_minutes=EXPIRY.total_seconds() / 60,
        **wallet.settings,
    )
    plugin = registry.plugin(wallet.name)
    [account] = [a for a in plugin.accounts(settings) if a.primary]
    adapter = LastMoment(plugin.build(account, READ_TIMEOUT_S))
    storage = await open_storage(pg_url)
    container = wire(settings, storage, _providers(settings, adapter, plugin.profile))
    transport = httpx.ASGITransport(app=build_app(container=container))
    with ExitStack():
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            yield Shop(client, container, wallet, adapter, notifications[0])
    await adapter.aclose()
    await storage.close()


def _providers(settings: Settings, adapter: LastMoment, profile: Any) -> Any:
    from orderguard.services.providers import Providers

    return Providers([slot(settings, adapter, profile)])


async def _sandbox(shop: Shop, method: str, path: str, **body: Any) -> Any:
    async with httpx.AsyncClient(base_url=shop.wallet.sandbox, verify=False) as admin:
        answer = await admin.request(method, path, json=body if method == "POST" else None)
    answer.raise_for_status()
    return answer.json()


async def _paid(shop: Shop) -> dict[str, Any]:
    order = await shop.place()
    await shop.wallet.pays(_ref(order), _action_url(shop, order))
    await shop.container.recheck.order(order["id"], cause=Cause.JANITOR)
    found = await shop.order(order["id"])
    assert found["state"] == "paid", found["timeline"]
    return found


async def _refund(shop: Shop, order: dict[str, Any]) -> Any:
    return await shop.client.post(
        f"/v1/orders/{order['id']}/refunds",
        json={"reason": "returned"},
        headers={"Idempotency-Key": "rf-1"},
    )


async def _news_lost(shop: Shop, order: dict[str, Any]) -> dict[str, Any]:
    """Refund ``order`` in full so that its outcome never reaches the shop: WeChat Pay's
    ends after the answer, its notification dropped; Alipay's answer is lost."""
    if shop.wallet.name == "wechatpay":
        await _sandbox(shop, "POST", "/sandbox/admin", settle_refunds=False)
        await _sandbox(shop, "POST", "/_sandbox/faults", notify_drop=1)
        answer = await _refund(shop, order)
        assert answer.status_code == 201, answer.text
        made: dict[str, Any] = answer.json()["refund"]
        assert made["state"] == "pending"  # PROCESSING
        await _sandbox(shop, "POST", "/sandbox/admin", settle_refund=made["id"])
        book = await _sandbox(shop, "GET", "/ledger")
        [news] = [n for n in book["notifications"] if n["event_type"] == "REFUND.SUCCESS"]
        assert news["faults"] == ["dropped"], news
    else:
        # every attempt of the retry layer (the same out_request_no: safe to repeat) times out
        await _sandbox(shop, "POST", "/_sandbox/faults", timeout_after=1, hold_s=2)
        answer = await _refund(shop, order)
        assert answer.status_code == 503, answer.text
    await _sandbox(shop, "POST", "/_sandbox/faults")  # no faults from here on
    document = await shop.order(order["id"])
    assert (document["state"], document["refunds"][0]["state"]) == ("paid", "pending")
    return document


def _checker(shop: Shop, by: timedelta) -> RefundCheck:
    return RefundCheck(
        shop.container.storage,
        shop.container.payments.providers,
        clock=lambda: datetime.now(UTC) + by,
    )


async def test_a_wallet_refund_whose_news_was_lost_is_settled_by_the_lookup(
    pg_shop: Shop,
) -> None:
    order = await _paid(pg_shop)
    await _news_lost(pg_shop, order)
    before = [n for n in pg_shop.notifications.received if b"REFUND" in n[0]]

    done = await _checker(pg_shop, DUE).run_once(owner="w1")

    assert (done.checked, done.settled, done.unknown) == (1, 1, 0)
    document = await pg_shop.order(order["id"])
    assert (document["state"], document["refunds"][0]["state"]) == ("refunded", "succeeded")
    assert document["amount_refunded"] == document["amount_total"]
    assert await pg_shop.wallet.refunded_fen(_ref(order)) == [TOTAL_FEN]  # made once
    assert [n for n in pg_shop.notifications.received if b"REFUND" in n[0]] == before


async def test_a_refund_query_answering_system_error_leaves_the_refund_pending(
    pg_shop: Shop,
) -> None:
    order = await _paid(pg_shop)
    await _news_lost(pg_shop, order)
    await _sandbox(pg_shop, "POST", "/_sandbox/faults", query_system_error=1)

    struck = await _checker(pg_shop, DUE).run_once(owner="w1")

    assert (struck.checked, struck.unknown, struck.settled) == (1, 1, 0)
    counts = (await _sandbox(pg_shop, "GET", "/_sandbox/faults"))["counts"]
    assert counts.get("query_system_error", 0) >= 1, counts
    document = await pg_shop.order(order["id"])
    assert (document["state"], document["refunds"][0]["state"]) == ("paid", "pending")
    assert document["flags"] == []
    await _sandbox(pg_shop, "POST", "/_sandbox/faults")
    later = await _checker(pg_shop, timedelta(days=1)).run_once(owner="w1")
    assert (later.checked, later.settled) == (1, 1)
    assert (await pg_shop.order(order["id"]))["state"] == "refunded"
