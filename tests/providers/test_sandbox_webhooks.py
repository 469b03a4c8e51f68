"""Signed webhooks from the sandbox, verified by the Stripe SDK, and the webhook faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import stripe

from orderguard.providers.base import PaymentOutcome
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import FaultProfile, serve_in_thread
from tests.providers.conftest import StartSandbox, charge_request
from tests.providers.harness import API_KEY, SECRET
from tests.providers.receiver import Receiver
from tests.providers.sandbox_client import fault_counts, ledger

#: How long a condition may take to come true before the test fails: far from the fraction of
#: a second it takes, so a loaded machine never decides a test.
DEADLINE_S = 30.0


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``condition`` to hold, failing only after :data:`DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.02)


async def delivery_state(url: str) -> str:
    """The delivery state of the sandbox's first event."""
    return str((await ledger(url))["events"][0]["_delivery"]["state"])


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


def types_of(receiver: Receiver) -> list[str]:
    return [json.loads(body)["type"] for body, _ in receiver.deliveries]


def delivery_of(receiver: Receiver, event_type: str) -> tuple[bytes, dict[str, str]]:
    [found] = [d for d in receiver.deliveries if json.loads(d[0])["type"] == event_type]
    return found


#: What one card payment sends, as Stripe does: the intent before confirmation, the charge,
#: the intent's result.
PAID_EVENTS = ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]


async def test_a_success_webhook_verifies_with_the_stripe_sdk(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks() as url:
        ref = await pay(url)
        await receiver.wait_for(3)
        assert sorted(types_of(receiver)) == sorted(PAID_EVENTS)
        body, headers = delivery_of(receiver, "payment_intent.succeeded")
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
        await receiver.wait_for(10)
        await asyncio.sleep(0.1)
    assert sorted(types_of(receiver)) == sorted(
        [
            *PAID_EVENTS,
            "payment_intent.created",
            "charge.failed",
            "payment_intent.payment_failed",
            "payment_intent.created",
            "payment_intent.requires_action",
            "refund.created",
            "charge.refunded",
        ]
    )
    refund_body, refund_headers = delivery_of(receiver, "charge.refunded")
    charge = json.loads(refund_body)["data"]["object"]
    # the current shape (API 2022-11-15 and later): cumulative amount, a flag, no list
    assert (charge["amount_refunded"], charge["refunded"]) == (500, False)
    assert "refunds" not in charge
    event = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(
        refund_body, refund_headers
    )
    # read as Stripe sends it since 2022-11-15: the cumulative amount, never a refunds list
    assert event.refund is None and event.charge is not None
    assert (event.charge.provider_ref, event.charge.amount_refunded) == (paid, 500)
    created_body, created_headers = delivery_of(receiver, "refund.created")
    made = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(
        created_body, created_headers
    )
    assert made.refund is not None
    assert (made.refund.provider_ref, made.refund.amount, made.refund.status) == (
        paid,
        500,
        "succeeded",
    )


async def test_a_refused_delivery_is_retried_until_accepted(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    receiver.fail_first = 1
    with with_webhooks() as url:
        await pay(url)
        await receiver.wait_for(3)

        async def settled() -> bool:
            events = (await ledger(url))["events"]
            return all(e["_delivery"]["state"] != "pending" for e in events)

        await until(settled, "every delivery to be marked")
        events = (await ledger(url))["events"]
    assert receiver.refused == 1
    assert sorted(e["_delivery"]["attempts"] for e in events) == [1, 1, 2]
    assert {e["_delivery"]["state"] for e in events} == {"delivered"}


async def test_a_dropped_webhook_never_arrives_and_is_counted(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_drop=1.0) as url:
        await pay(url)

        async def dropped() -> bool:
            return await delivery_state(url) == "dropped"

        await until(dropped, "the webhook to be dropped")  # decided instead of sending it
        counts = await fault_counts(url)
        events = (await ledger(url))["events"]
    assert receiver.deliveries == []
    assert counts["webhook_dropped"] == 3  # every event, payment_intent.created included
    assert [e["_delivery"]["state"] for e in events] == ["dropped"] * 3


async def test_a_duplicated_webhook_arrives_twice_with_one_event_id(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_duplicate=1.0) as url:
        await pay(url)
        await receiver.wait_for(6)
        counts = await fault_counts(url)
    ids = receiver.event_ids()
    assert len(ids) == 6 and all(ids.count(i) == 2 for i in ids)
    assert counts["webhook_duplicated"] == 3


async def test_reordered_webhooks_arrive_out_of_order(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_reorder=1.0) as url:
        await pay(url)
        await receiver.wait_for(3)
        sent = [e["id"] for e in (await ledger(url))["events"]]
        counts = await fault_counts(url)
    # the first event (payment_intent.created) is held back and arrives after the result
    assert sorted(receiver.event_ids()) == sorted(sent)
    assert receiver.event_ids()[-1] == sent[0]
    assert types_of(receiver)[-1] == "payment_intent.created"
    assert counts["webhook_reordered"] == 1


async def test_a_delayed_webhook_arrives_late(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks(webhook_delay=1.0, webhook_delay_ms=(400, 400)) as url:
        before = time.monotonic()
        await pay(url)
        await receiver.wait_for(3)
        assert (await fault_counts(url))["webhook_delayed"] == 3
    # a lower bound the delay itself guarantees: a slow machine only makes it later
    assert min(receiver.arrived) - before >= 0.4


async def test_a_cancelled_payment_sends_a_canceled_webhook(
    with_webhooks: Any, receiver: Receiver, pay: Any
) -> None:
    with with_webhooks() as url:
        ref = await pay(url, "pm_card_authenticationRequired")
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        await provider.cancel_payment(ref)
        await provider.cancel_payment(ref)  # a repeat changes nothing and sends nothing
        await provider.aclose()
        await receiver.wait_for(3)

        async def all_delivered() -> bool:
            events = (await ledger(url))["events"]
            return all(e["_delivery"]["state"] == "delivered" for e in events)

        await until(all_delivered, "every event to be delivered")
        # every event the ledger holds arrived once, and nothing else: the repeat sent nothing
        sent = sorted(e["id"] for e in (await ledger(url))["events"])
        assert sorted(receiver.event_ids()) == sent
    types = types_of(receiver)
    assert sorted(types) == [
        "payment_intent.canceled",
        "payment_intent.created",
        "payment_intent.requires_action",
    ]
    body, headers = delivery_of(receiver, "payment_intent.canceled")
    event = StripeProvider(api_key=API_KEY, webhook_secret=SECRET).parse_webhook(body, headers)
    assert event.type == "payment_intent.canceled"
    assert event.payment is not None
    assert (event.payment.provider_ref, event.payment.outcome) == (ref, PaymentOutcome.FAILED)
    assert event.payment.decline_code == "canceled"
