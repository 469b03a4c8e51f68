"""Signed webhooks from the sandbox, verified by the Stripe SDK, and the webhook faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stripe

from orderguard.providers.base import PaymentOutcome
from orderguard.providers.sandbox import FaultProfile, serve_in_thread
from orderguard.providers.stripe import StripeProvider
from tests.providers.conftest import StartSandbox, charge_request
from tests.providers.harness import API_KEY, SECRET
from tests.providers.receiver import Receiver
from tests.providers.sandbox_client import fault_counts, ledger


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver.app()) as url:
        yield f"{url}/hooks"


@pytest.fixture
def with_webhooks(start_sandbox: StartSandbox, hook_url: str) -> Any:
    """Start a sandbox delivering webhooks to the receiver, with the given faults."""

    def start(**faults: Any) -> Any:
        return start_sandbox(webhook_url=hook_url, faults=FaultProfile(**faults))

    return start


@pytest.fixture
async def pay(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    providers: list[StripeProvider] = []

    async def charge(url: str, method: str = "pm_card_visa") -> str:
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        providers.append(provider)
        result = await provider.create_payment(charge_request(method=method))
        assert result.provider_ref is not None
        return result.provider_ref

    yield charge
    for provider in providers:
        await provider.aclose()


async def test_a_success_webhook_verifies_with_the_stripe_sdk(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks() as url:
        ref = await pay(url)
        await receiver.wait_for(1)
        body, headers = receiver.deliveries[0]
        event = stripe.Webhook.construct_event(body, headers["stripe-signature"], SECRET)
        assert event.type == "payment_intent.succeeded"
        assert event.data.object.id == ref
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, headers["stripe-signature"], "whsec_other")
        parsed = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(body, headers)
        assert parsed.payment is not None and parsed.payment.outcome is PaymentOutcome.SUCCEEDED


async def test_failure_action_and_refund_webhooks_are_sent(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks() as url:
        paid = await pay(url)
        await pay(url, "pm_card_chargeDeclined")
        await pay(url, "pm_card_authenticationRequired")
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        await provider.refund(paid, amount=500, idempotency_key="refund-1")
        await provider.aclose()
        await receiver.wait_for(4)
    types = [json.loads(body)["type"] for body, _ in receiver.deliveries]
    assert sorted(types) == sorted(
        [
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.requires_action",
            "charge.refunded",
        ]
    )
    refund_body, refund_headers = receiver.deliveries[types.index("charge.refunded")]
    event = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(
        refund_body, refund_headers
    )
    # read as Stripe sends it since 2022-11-15: the cumulative amount, never a refunds list
    assert event.refund is None and event.charge is not None
    assert (event.charge.provider_ref, event.charge.amount_refunded) == (paid, 500)


async def test_a_refused_delivery_is_retried_until_accepted(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    receiver.fail_first = 1
    with with_webhooks() as url:
        await pay(url)
        await receiver.wait_for(1)
        events = (await ledger(url))["events"]
        for _ in range(50):
            if events[0]["_delivery"]["state"] != "pending":
                break
            await asyncio.sleep(0.02)
            events = (await ledger(url))["events"]
    assert receiver.refused == 1
    assert events[0]["_delivery"] == {"state": "delivered", "attempts": 2}


async def test_a_dropped_webhook_never_arrives_and_is_counted(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_drop=1.0) as url:
        await pay(url)
        await asyncio.sleep(0.3)
        counts = await fault_counts(url)
        events = (await ledger(url))["events"]
    assert receiver.deliveries == []
    assert counts["webhook_dropped"] == 1
    assert events[0]["_delivery"]["state"] == "dropped"


async def test_a_duplicated_webhook_arrives_twice_with_one_event_id(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_duplicate=1.0) as url:
        await pay(url)
        await receiver.wait_for(2)
        counts = await fault_counts(url)
    ids = receiver.event_ids()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert counts["webhook_duplicated"] == 1


async def test_reordered_webhooks_arrive_out_of_order(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_reorder=1.0) as url:
        await pay(url)
        await pay(url)
        await receiver.wait_for(2)
        sent = [e["id"] for e in (await ledger(url))["events"]]
        counts = await fault_counts(url)
    assert receiver.event_ids() == list(reversed(sent))
    assert counts["webhook_reordered"] == 1


async def test_a_delayed_webhook_arrives_late(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_delay=1.0, webhook_delay_ms=(400, 400)) as url:
        await pay(url)
        await asyncio.sleep(0.2)
        assert receiver.deliveries == []
        await receiver.wait_for(1)
        assert (await fault_counts(url))["webhook_delayed"] == 1


async def test_a_cancelled_payment_sends_a_canceled_webhook(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks() as url:
        ref = await pay(url, "pm_card_authenticationRequired")
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        await provider.cancel_payment(ref)
        await provider.cancel_payment(ref)  # a repeat changes nothing and sends nothing
        await provider.aclose()
        await receiver.wait_for(2)
        await asyncio.sleep(0.1)
    types = [json.loads(body)["type"] for body, _ in receiver.deliveries]
    assert sorted(types) == ["payment_intent.canceled", "payment_intent.requires_action"]
    body, headers = receiver.deliveries[types.index("payment_intent.canceled")]
    event = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(body, headers)
    assert event.type == "payment_intent.canceled"
    assert event.payment is not None
    assert (event.payment.provider_ref, event.payment.outcome) == (ref, PaymentOutcome.FAILED)
    assert event.payment.decline_code == "canceled"
