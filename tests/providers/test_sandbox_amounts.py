"""The sandbox refuses, as Stripe does, PaymentIntent amounts Stripe cannot charge.

Amounts here are in Stripe's units (what goes over the wire); the codes are Stripe's
(https://docs.stripe.com/error-codes), the limits its currency page's
(https://docs.stripe.com/currencies).
"""

from __future__ import annotations

import httpx
import pytest

from orderguard.providers.base import ProviderRejected, UnchargeableAmount
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.conftest import charge_request
from tests.providers.sandbox_client import AUTH, ledger

REFUSED = [
    ("usd", 49, "amount_too_small", "amount", "Amount must be at least 0.50 usd"),
    ("gbp", 29, "amount_too_small", "amount", "Amount must be at least 0.30 gbp"),
    ("jpy", 49, "amount_too_small", "amount", "Amount must be at least 50 jpy"),
    ("huf", 17499, "amount_too_small", "amount", "Amount must be at least 175.00 huf"),
    ("usd", 100000000, "amount_too_large", "amount", "Amount must be no more than 999,999.99 usd"),
    ("mga", 100000000, "amount_too_large", "amount", "Amount must be no more than 99,999,999 mga"),
    ("kwd", 5124, "invalid_charge_amount", "amount", "KWD amounts must be a multiple of 10"),
    ("isk", 150, "invalid_charge_amount_no_decimal_compatible", "amount", "divisible by 100"),
    ("iqd", 5000, "parameter_invalid", "currency", "Invalid currency: iqd"),
]


@pytest.mark.parametrize(("currency", "amount", "code", "param", "says"), REFUSED)
async def test_what_stripe_refuses_the_sandbox_refuses(
    sandbox_url: str, currency: str, amount: int, code: str, param: str, says: str
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:
        response = await http.post(
            "/v1/payment_intents",
            data={
                "amount": str(amount),
                "currency": currency,
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert says in error["message"]
    assert (await ledger(sandbox_url))["payment_intents"] == []


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("usd", 50), ("mga", 1), ("isk", 100), ("kwd", 5120), ("jpy", 99999999), ("idr", 10**11)],
)
async def test_what_stripe_charges_the_sandbox_charges(
    sandbox_url: str, currency: str, amount: int
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as http:
        response = await http.post(
            "/v1/payment_intents",
            data={
                "amount": str(amount),
                "currency": currency,
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
        )
    assert response.status_code == 200, response.text
    [charge] = (await ledger(sandbox_url))["charges"]
    assert (charge["amount"], charge["currency"], charge["status"]) == (
        amount,
        currency,
        "succeeded",
    )


async def test_the_adapter_sends_stripes_units_and_reads_back_iso_units(
    stripe_provider: StripeProvider, sandbox_url: str
) -> None:
    paid = await stripe_provider.create_payment(charge_request(amount=5, currency="ISK"))
    assert (paid.amount, paid.currency) == (5, "ISK")
    [charge] = (await ledger(sandbox_url))["charges"]
    assert (charge["amount"], charge["currency"]) == (500, "isk")


async def test_an_amount_stripe_cannot_write_is_never_sent(
    stripe_provider: StripeProvider, sandbox_url: str
) -> None:
    with pytest.raises(UnchargeableAmount, match="MGA"):
        await stripe_provider.create_payment(charge_request(amount=100050, currency="MGA"))
    assert (await ledger(sandbox_url))["payment_intents"] == []


async def test_a_stripe_refusal_of_a_small_amount_fails_the_attempt_without_a_charge(
    stripe_provider: StripeProvider, sandbox_url: str
) -> None:
    with pytest.raises(ProviderRejected, match=r"Amount must be at least 0\.50 usd") as refused:
        await stripe_provider.create_payment(charge_request(amount=49, currency="USD"))
    assert not refused.value.safe_to_retry
    assert (await ledger(sandbox_url))["charges"] == []


async def test_a_refund_stripe_cannot_take_is_never_sent(
    stripe_provider: StripeProvider, sandbox_url: str
) -> None:
    paid = await stripe_provider.create_payment(charge_request(amount=5120, currency="KWD"))
    assert paid.provider_ref is not None
    with pytest.raises(UnchargeableAmount, match="multiples of 10"):  # 1.025 KWD
        await stripe_provider.refund(paid.provider_ref, amount=1025, idempotency_key="r-1")
    assert (await ledger(sandbox_url))["refunds"] == []
    refunded = await stripe_provider.refund(paid.provider_ref, amount=1020, idempotency_key="r-2")
    assert (refunded.amount, refunded.currency) == (1020, "KWD")
    [made] = (await ledger(sandbox_url))["refunds"]
    assert made["amount"] == 1020
