"""The WeChat Pay sandbox's fault profile, seen at the protocol (the notifications the shop
receives, the v3 answers) and through the adapter; the ledger stays the truth."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
)
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.sandbox.identity import Identity
from orderguard.providers.wechatpay.signing import authorization
from tests.providers.receiver import Receiver
from tests.providers.wechatpay_kit import *  # noqa: F403 (fixtures)
from tests.providers.wechatpay_kit import charge

TRADES = "/v3/pay/transactions/out-trade-no"


@dataclass
class Sandbox:
    """The sandbox as the tests reach it: one client (no certificate store to load)."""

    client: httpx.AsyncClient
    identity: Identity

    async def faults(self, **settings: Any) -> None:
        """Switch to ``settings`` over the ``none`` profile."""
        switched = await self.client.post("/_sandbox/faults", json=settings)
        assert switched.status_code == 200, switched.text

    async def scanned(self, provider: WechatPayProvider) -> str:
        """A Native order whose QR code the shopper scanned: NOTPAY, ready to be paid."""
        created = await provider.create_payment(charge())
        scan = await self.client.post("/sandbox/scan", json={"code_url": created.redirect_url})
        assert scan.status_code == 200, scan.text
        assert created.provider_ref is not None
        return created.provider_ref

    async def pays(self, ref: str) -> None:
        paid = await self.client.post(f"/sandbox/shopper/{ref}/pay")
        assert paid.status_code == 200, paid.text

    async def ledger(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.client.get("/ledger")).json()
        return found

    async def state(self, ref: str) -> str:
        [trade] = [t for t in (await self.ledger())["trades"] if t["out_trade_no"] == ref]
        found: str = trade["trade_state"]
        return found

    async def sent(self) -> dict[str, dict[str, Any]]:
        """The sandbox's notifications by event id."""
        return {n["id"]: n for n in (await self.ledger())["notifications"]}

    async def signed(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request signed as the merchant, its answer as WeChat Pay gave it."""
        text = "" if body is None else json.dumps(body, separators=(",", ":"))
        header = authorization(
            mchid=self.identity.mchid,
            serial_no=self.identity.merchant_serial_no,
            private_key=self.identity.merchant_key,
            method=method,
            url=path,
            body=text,
        )
        return await self.client.request(
            method,
            path,
            content=text.encode() if text else None,
            headers={"Authorization": header, "Content-Type": "application/json"},
        )

    async def query(self, ref: str) -> httpx.Response:
        return await self.signed("GET", f"{TRADES}/{ref}?mchid={self.identity.mchid}")

    async def close(self, ref: str) -> httpx.Response:
        return await self.signed("POST", f"{TRADES}/{ref}/close", {"mchid": self.identity.mchid})


@pytest.fixture
async def sandbox(wechat_sandbox: str, identity: Identity) -> AsyncIterator[Sandbox]:
    async with httpx.AsyncClient(base_url=wechat_sandbox, verify=False) as client:
        yield Sandbox(client, identity)


async def test_a_duplicated_notification_arrives_twice_with_one_event_id(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    await sandbox.faults(notify_duplicate=1)
    ref = await sandbox.scanned(provider)
    await sandbox.pays(ref)
    await receiver.wait_for(2)
    first, second = receiver.event_ids()
    assert first == second
    notification = (await sandbox.sent())[first]
    assert (notification["out_trade_no"], notification["faults"]) == (ref, ["duplicated"])
    event = provider.parse_webhook(*receiver.deliveries[1])
    assert event.event_id == first and event.payment is not None
    assert event.payment.provider_ref == ref


async def test_a_dropped_notification_never_comes_and_the_trade_stays_paid(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    await sandbox.faults(notify_drop=1)
    ref = await sandbox.scanned(provider)
    await sandbox.pays(ref)
    [notification] = (await sandbox.sent()).values()
    assert (notification["faults"], notification["statuses"]) == (["dropped"], [])
    assert await sandbox.state(ref) == "SUCCESS"
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED
    assert receiver.deliveries == []


async def test_a_reordered_notification_arrives_after_the_next_one(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    first = await sandbox.scanned(provider)
    second = await sandbox.scanned(provider)
    await sandbox.faults(notify_reorder=1)
    await sandbox.pays(first)
    await sandbox.pays(second)
    await receiver.wait_for(2)
    by_id = await sandbox.sent()
    assert [by_id[i]["out_trade_no"] for i in receiver.event_ids()] == [second, first]


async def test_a_delayed_notification_waits_its_delay(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    await sandbox.faults(notify_delay=1, notify_delay_ms=[400, 400])
    ref = await sandbox.scanned(provider)
    paid_at = time.monotonic()
    await sandbox.pays(ref)
    await receiver.wait_for(1)
    assert receiver.arrived[0] - paid_at >= 0.4


async def test_the_notification_comes_while_the_query_still_says_notpay(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    await sandbox.faults(notify_before_query=1, before_query_s=1.5)
    ref = await sandbox.scanned(provider)
    await sandbox.pays(ref)
    await receiver.wait_for(1)
    answer = await sandbox.query(ref)
    assert (answer.status_code, answer.json()["trade_state"]) == (200, "NOTPAY")
    assert "transaction_id" not in answer.json()
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.ACTION_REQUIRED
    assert await sandbox.state(ref) == "SUCCESS"  # the ledger knows better
    deadline = time.monotonic() + 3
    while (await provider.retrieve_payment(ref)).outcome is not PaymentOutcome.SUCCEEDED:
        assert time.monotonic() < deadline, "the query never caught up"
        await asyncio.sleep(0.05)


async def test_a_query_system_error_is_wechats_500_and_never_a_failed_payment(
    provider: WechatPayProvider, sandbox: Sandbox
) -> None:
    ref = await sandbox.scanned(provider)
    await sandbox.pays(ref)
    await sandbox.faults(query_system_error=1)
    answer = await sandbox.query(ref)
    assert answer.status_code == 500
    assert answer.json()["code"] == "SYSTEM_ERROR" and answer.json()["message"]
    assert answer.headers["Wechatpay-Signature"]
    with pytest.raises(ProviderError) as trouble:  # ask again later: no result at all
        await provider.retrieve_payment(ref)
    assert trouble.value.safe_to_retry
    await sandbox.faults()
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED


async def test_a_payment_racing_the_close_refuses_it_orderpaid_and_the_adapter_reports_paid(
    provider: WechatPayProvider, sandbox: Sandbox, receiver: Receiver
) -> None:
    raw = await sandbox.scanned(provider)
    adapted = await sandbox.scanned(provider)
    await sandbox.faults(close_race=1)
    answer = await sandbox.close(raw)
    assert (answer.status_code, answer.json()["code"]) == (403, "ORDERPAID")
    closed = await provider.close_payment(adapted)
    assert (closed.outcome, closed.amount) == (PaymentOutcome.SUCCEEDED, 2599)
    assert [await sandbox.state(ref) for ref in (raw, adapted)] == ["SUCCESS"] * 2
    await receiver.wait_for(2)
    counts = (await sandbox.client.get("/_sandbox/faults")).json()["counts"]
    assert counts == {"close_race": 2}


async def test_an_unscanned_order_cannot_be_paid_so_its_close_never_races(
    provider: WechatPayProvider, sandbox: Sandbox
) -> None:
    created = await provider.create_payment(charge())
    await sandbox.faults(close_race=1)
    assert created.provider_ref is not None
    closed = await provider.close_payment(created.provider_ref)
    assert closed.outcome is PaymentOutcome.FAILED
    assert await sandbox.state(created.provider_ref) == "CLOSED"


async def test_call_faults_answer_in_wechats_words_and_the_ledger_keeps_what_ran(
    provider: WechatPayProvider, sandbox: Sandbox
) -> None:
    before, after = await sandbox.scanned(provider), await sandbox.scanned(provider)
    await sandbox.faults(error_before=1)
    answer = await sandbox.close(before)
    assert (answer.status_code, answer.json()["code"]) == (500, "SYSTEM_ERROR")
    assert await sandbox.state(before) == "NOTPAY"
    await sandbox.faults(error_after=1)
    with pytest.raises(ProviderError):
        await provider.close_payment(after)
    assert await sandbox.state(after) == "CLOSED"
    await sandbox.faults(rate_limit=1)
    answer = await sandbox.query(before)
    assert (answer.status_code, answer.json()["code"]) == (429, "FREQUENCY_LIMITED")
    with pytest.raises(ProviderRateLimited):
        await provider.retrieve_payment(before)


async def test_a_timeout_after_an_order_leaves_it_placed(
    provider: WechatPayProvider, sandbox: Sandbox
) -> None:
    await sandbox.faults(timeout_after=1, hold_s=10)
    request = charge()
    with pytest.raises(ProviderOutcomeUnknown):  # the kit's adapter waits 1 s
        await provider.create_payment(request)
    [trade] = (await sandbox.ledger())["trades"]
    assert trade["out_trade_no"] == request.attempt_id
    await sandbox.faults()
    again = await provider.create_payment(request)  # the same order: the same prepay
    assert again.outcome is PaymentOutcome.ACTION_REQUIRED
    assert len((await sandbox.ledger())["trades"]) == 1
