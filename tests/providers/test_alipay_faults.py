"""The Alipay sandbox's fault profile, seen at the protocol (the notifications the shop
receives, the gateway's answers) and through the adapter; the ledger stays the truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from orderguard.providers.alipay import errors
from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.mapping import NOT_CREATED, STATE
from orderguard.providers.base import (
    PaymentOutcome,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderUnavailable,
)
from tests.providers import alipay_support
from tests.providers.alipay_support import (
    NotifyReceiver,
    alipay_request,
    ledger,
    open_cashier,
    shopper,
)

# the shared fixtures, by name
admin = alipay_support.admin
key_pairs = alipay_support.key_pairs
sandbox_url = alipay_support.sandbox_url
receiver = alipay_support.receiver
notify_url = alipay_support.notify_url
notifying_provider = alipay_support.notifying_provider


@pytest.fixture
def provider(notifying_provider: AlipayProvider) -> AlipayProvider:
    """The adapter, its notifications sent to :data:`receiver`."""
    return notifying_provider


async def faults(admin: httpx.AsyncClient, **settings: Any) -> None:
    """Switch the sandbox to ``settings`` over the ``none`` profile."""
    switched = await admin.post("/_sandbox/faults", json=settings)
    assert switched.status_code == 200, switched.text


async def waiting(provider: AlipayProvider, admin: httpx.AsyncClient) -> str:
    """A trade the shopper logged in to: it waits for payment."""
    created = await provider.create_payment(alipay_request())
    assert created.redirect_url is not None and created.provider_ref is not None
    await open_cashier(created.redirect_url)
    await shopper(admin, created.provider_ref, "login")
    return created.provider_ref


async def raw_call(provider: AlipayProvider, method: str, ref: str) -> Mapping[str, object]:
    """The gateway's verified answer to ``method`` on trade ``ref``, as Alipay wrote it."""
    return await provider.gateway.call(method, {"out_trade_no": ref}, mutating=False)


def notify_ids(receiver: NotifyReceiver) -> list[tuple[str, str]]:
    """(notify_id, out_trade_no) of every notification received, in arrival order."""
    forms = [dict(parse_qsl(body.decode())) for body in receiver.bodies]
    return [(form["notify_id"], form["out_trade_no"]) for form in forms]


async def trade_status(admin: httpx.AsyncClient, ref: str) -> str:
    [trade] = [t for t in (await ledger(admin))["trades"] if t["out_trade_no"] == ref]
    status: str = trade["status"]
    return status


async def test_a_duplicated_notification_arrives_twice_with_one_notify_id(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    await faults(admin, notify_duplicate=1)
    ref = await waiting(provider, admin)
    await shopper(admin, ref, "pay")
    await receiver.wait_for(2)
    [first, second] = notify_ids(receiver)
    assert first == second and first[1] == ref
    [sent] = (await ledger(admin))["notifications"]
    assert (sent["notify_id"], sent["faults"]) == (first[0], ["duplicated"])
    assert provider.parse_webhook(receiver.bodies[1], {}).event_id == first[0]


async def test_a_dropped_notification_never_comes_and_the_trade_stays_paid(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    await faults(admin, notify_drop=1)
    ref = await waiting(provider, admin)
    await shopper(admin, ref, "pay")
    [sent] = (await ledger(admin))["notifications"]
    assert (sent["faults"], sent["attempts"], sent["delivered"]) == (["dropped"], 0, False)
    assert await trade_status(admin, ref) == "TRADE_SUCCESS"
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED
    assert receiver.bodies == []


async def test_a_reordered_notification_arrives_after_the_next_one(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    first, second = await waiting(provider, admin), await waiting(provider, admin)
    await faults(admin, notify_reorder=1)
    await shopper(admin, first, "pay")
    await shopper(admin, second, "pay")
    await receiver.wait_for(2)
    assert [ref for _, ref in notify_ids(receiver)] == [second, first]
    sent = {n["out_trade_no"]: n["faults"] for n in (await ledger(admin))["notifications"]}
    assert sent == {first: ["reordered"], second: []}


async def test_a_delayed_notification_waits_its_delay(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    await faults(admin, notify_delay=1, notify_delay_ms=[400, 400])
    ref = await waiting(provider, admin)
    paid_at = time.monotonic()
    await shopper(admin, ref, "pay")
    await receiver.wait_for(1)
    assert time.monotonic() - paid_at >= 0.4
    [sent] = (await ledger(admin))["notifications"]
    assert sent["faults"] == ["delayed 400ms"]


async def test_the_notification_comes_while_the_query_still_says_the_trade_does_not_exist(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    await faults(admin, notify_before_query=1, before_query_s=1.5)
    ref = await waiting(provider, admin)
    await shopper(admin, ref, "pay")
    await receiver.wait_for(1)
    answer = await raw_call(provider, "alipay.trade.query", ref)
    assert (answer["code"], answer["sub_code"]) == ("40004", errors.TRADE_NOT_EXIST)
    lagging = await provider.retrieve_payment(ref)
    assert lagging.outcome is PaymentOutcome.ACTION_REQUIRED
    assert lagging.metadata[STATE] == NOT_CREATED
    assert await trade_status(admin, ref) == "TRADE_SUCCESS"  # the ledger knows better
    deadline = time.monotonic() + 3
    while (await provider.retrieve_payment(ref)).outcome is not PaymentOutcome.SUCCEEDED:
        assert time.monotonic() < deadline, "the query never caught up"
        await asyncio.sleep(0.05)


async def test_a_query_system_error_is_alipays_answer_and_never_a_failed_payment(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await waiting(provider, admin)
    await shopper(admin, ref, "pay")
    await faults(admin, query_system_error=1)
    answer = await raw_call(provider, "alipay.trade.query", ref)
    assert {k: answer[k] for k in ("code", "msg", "sub_code")} == {
        "code": "40004",
        "msg": "Business Failed",
        "sub_code": "ACQ.SYSTEM_ERROR",
    }
    with pytest.raises(ProviderUnavailable):  # ask again later: no result, let alone FAILED
        await provider.retrieve_payment(ref)
    await faults(admin)
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.SUCCEEDED


async def test_a_payment_racing_the_close_refuses_it_and_the_adapter_reports_paid(
    provider: AlipayProvider, admin: httpx.AsyncClient, receiver: NotifyReceiver
) -> None:
    raw, adapted = await waiting(provider, admin), await waiting(provider, admin)
    await faults(admin, close_race=1)
    answer = await raw_call(provider, "alipay.trade.close", raw)
    assert (answer["code"], answer["sub_code"], answer["sub_msg"]) == (
        "40004",
        "ACQ.TRADE_STATUS_ERROR",
        "交易状态不合法",
    )
    closed = await provider.close_payment(adapted)
    assert (closed.outcome, closed.amount) == (PaymentOutcome.SUCCEEDED, 2599)
    assert [await trade_status(admin, ref) for ref in (raw, adapted)] == ["TRADE_SUCCESS"] * 2
    await receiver.wait_for(2)
    assert sorted(ref for _, ref in notify_ids(receiver)) == sorted([raw, adapted])


async def test_an_error_before_the_close_changes_nothing_an_error_after_it_keeps_the_close(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    before, after = await waiting(provider, admin), await waiting(provider, admin)
    await faults(admin, error_before=1)
    answer = await raw_call(provider, "alipay.trade.close", before)
    assert (answer["code"], answer["sub_code"]) == ("20000", "isp.unknow-error")
    assert await trade_status(admin, before) == "WAIT_BUYER_PAY"
    await faults(admin, error_after=1)
    with pytest.raises(ProviderOutcomeUnknown) as lost:
        await provider.close_payment(after)
    assert lost.value.safe_to_retry
    assert await trade_status(admin, after) == "TRADE_CLOSED"
    await faults(admin)
    closed = await provider.close_payment(after)  # the same close again: the trade is closed
    assert closed.outcome is PaymentOutcome.FAILED


async def test_a_timeout_after_the_close_leaves_the_trade_closed(
    provider: AlipayProvider, admin: httpx.AsyncClient, sandbox_url: str
) -> None:
    ref = await waiting(provider, admin)
    await faults(admin, timeout_after=1, hold_s=10)
    form = provider.gateway.params("alipay.trade.close", {"out_trade_no": ref})
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                f"{sandbox_url}/gateway.do",
                content=urlencode(form).encode(),
                headers={"content-type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
    deadline = time.monotonic() + 5  # the close ran before the answer was held
    while await trade_status(admin, ref) != "TRADE_CLOSED":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    shown = (await admin.get("/_sandbox/faults")).json()
    assert shown["counts"] == {"timeout_after": 1}


async def test_rate_limits_and_outages_answer_in_alipays_words(
    provider: AlipayProvider, admin: httpx.AsyncClient
) -> None:
    ref = await waiting(provider, admin)
    await faults(admin, rate_limit=1)
    with pytest.raises(ProviderRateLimited):
        await provider.retrieve_payment(ref)
    await faults(admin, outage=1, outage_s=0.3)
    for _ in range(2):  # every call in the window
        answer = await raw_call(provider, "alipay.trade.query", ref)
        assert answer["code"] == "20000"
    await faults(admin)  # a new profile ends the outage
    assert (await provider.retrieve_payment(ref)).outcome is PaymentOutcome.ACTION_REQUIRED
    counts = (await admin.get("/_sandbox/faults")).json()["counts"]
    assert counts["rate_limit"] >= 1 and counts["outage"] == 2


async def test_the_fault_switch_takes_names_and_settings_and_refuses_the_rest(
    admin: httpx.AsyncClient,
) -> None:
    named = await admin.post("/_sandbox/faults", json={"profile": "storm"})
    assert named.status_code == 200 and named.json()["notify_duplicate"] == 0.3
    mixed = await admin.post("/_sandbox/faults", json={"base": "flaky", "close_race": 0.5})
    assert (mixed.json()["close_race"], mixed.json()["notify_drop"]) == (0.5, 0.05)
    for bad in ({"profile": "hurricane"}, {"notify_dropp": 1}, {"close_race": 2}, [1]):
        refused = await admin.post("/_sandbox/faults", json=bad)
        assert refused.status_code == 400 and refused.json()["error"]
    shown = (await admin.get("/_sandbox/faults")).json()
    assert shown["profile"]["close_race"] == 0.5  # the refusals changed nothing
