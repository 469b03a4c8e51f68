"""Every amount the Stripe adapter reads is turned from Stripe's units into ISO minor units."""

from __future__ import annotations

import json

import pytest

from orderguard.providers.base import InvalidWebhook, UnreadableAmount
from orderguard.providers.stripe import mapping
from orderguard.providers.stripe.adapter import StripeProvider


def _intent(amount: int, currency: str) -> dict[str, object]:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "status": "succeeded",
        "created": 1_700_000_000,
        "metadata": {"order_id": "ord_1", "attempt_id": "pay_1"},
    }


def _charge(amount: int, refunded: int, currency: str) -> dict[str, object]:
    return {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_1",
        "amount": amount,
        "amount_refunded": refunded,
        "currency": currency,
        "status": "succeeded",
        "created": 1_700_000_000,
        "metadata": {"order_id": "ord_1"},
    }


@pytest.mark.parametrize(
    ("currency", "stripe", "iso"),
    [("mga", 1000, 100000), ("isk", 500, 5), ("kwd", 5120, 5120), ("jpy", 5000, 5000)],
)
def test_payment_intents_and_charges_read_in_iso_units(
    currency: str, stripe: int, iso: int
) -> None:
    assert mapping.payment_result(_intent(stripe, currency)).amount == iso
    charge = mapping.charge(_charge(stripe, stripe, currency))
    assert (charge.amount, charge.amount_refunded) == (iso, iso)


def test_refunds_and_refund_webhooks_read_in_iso_units() -> None:
    refund = {
        "id": "re_1",
        "object": "refund",
        "payment_intent": "pi_1",
        "amount": 400,
        "currency": "mga",
        "status": "succeeded",
    }
    assert mapping.refund_result(refund).amount == 40000
    event = {"id": "evt_1", "type": "refund.updated", "created": 1, "data": {"object": refund}}
    parsed = mapping.webhook_event(event)
    assert parsed.refund is not None and parsed.refund.amount == 40000
    charged = {"id": "evt_2", "type": "charge.refunded", "created": 1}
    charged["data"] = {"object": _charge(1000, 400, "mga")}
    parsed = mapping.webhook_event(charged)
    assert parsed.charge is not None
    assert (parsed.charge.amount, parsed.charge.amount_refunded) == (100000, 40000)


def test_a_payment_webhook_reads_in_iso_units() -> None:
    event = {
        "id": "evt_3",
        "type": "payment_intent.succeeded",
        "created": 1,
        "data": {"object": _intent(500, "isk")},
    }
    parsed = mapping.webhook_event(event)
    assert parsed.payment is not None and parsed.payment.amount == 5


def test_an_amount_without_an_exact_iso_value_is_never_guessed() -> None:
    with pytest.raises(UnreadableAmount, match="ISK"):
        mapping.payment_result(_intent(150, "isk"))  # 1.50 ISK: ISO has no decimals
    with pytest.raises(UnreadableAmount):
        mapping.charge(_charge(150, 0, "isk"))
    provider = StripeProvider(api_key="sk_test_x", webhook_secret="whsec_x")
    event = {"id": "e", "type": "payment_intent.succeeded", "created": 1}
    event["data"] = {"object": _intent(150, "isk")}
    with pytest.raises(InvalidWebhook, match="ISK"):
        provider.decode_webhook(json.dumps(event).encode())
