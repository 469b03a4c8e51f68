"""Every currency on Stripe's special lists, ordered through the API and the Stripe adapter
against the sandbox: charged exactly the right amount in Stripe's units (read on the
sandbox's ledger), or refused at intake, before anything is stored, naming the rule.

Every expected number is written out here, from Stripe's currency page
(https://docs.stripe.com/currencies), not computed by orderguard's tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderguard.providers.base import UnchargeableAmount
from tests.e2e.payment_harness import Sandbox, Shop, open_shop, sandbox
from tests.factories import order_body

#: currency -> (order total in ISO 4217 minor units, amount Stripe must be asked for).
CHARGED: dict[str, tuple[int, int]] = {
    # zero-decimal at Stripe and in ISO 4217: the same number
    "BIF": (5000, 5000),
    "CLP": (5000, 5000),
    "DJF": (5000, 5000),
    "GNF": (5000, 5000),
    "JPY": (5000, 5000),
    "KMF": (5000, 5000),
    "KRW": (5000, 5000),
    "PYG": (5000, 5000),
    "RWF": (5000, 5000),
    "UGX": (5000, 5000),
    "VND": (5000, 5000),
    "VUV": (5000, 5000),
    "XAF": (5000, 5000),
    "XOF": (5000, 5000),
    "XPF": (5000, 5000),
    # zero-decimal at Stripe, two decimals in ISO 4217: 1,000.00 MGA is 1000 at Stripe
    "MGA": (100000, 1000),
    # three-decimal, ending in 0: 5.120
    "BHD": (5120, 5120),
    "JOD": (5120, 5120),
    "KWD": (5120, 5120),
    "OMR": (5120, 5120),
    "TND": (5120, 5120),
    # two decimals in Stripe's API, none in ISO 4217: 5 ISK is 500
    "ISK": (5, 500),
    # two-decimal for charges (their whole-unit rule is for payouts): 175.00 HUF, 12.34 TWD
    "HUF": (17500, 17500),
    "TWD": (1234, 1234),
    # the minimum itself is chargeable
    "USD": (50, 50),
    "GBP": (30, 30),
}

#: currency, order total (ISO minor units) -> (rule, nearest chargeable totals).
REFUSED: dict[tuple[str, int], tuple[str, list[dict[str, Any]]]] = {
    ("MGA", 100050): (
        "granularity",
        [
            {"amount": 100000, "formatted": "1000.00 MGA"},
            {"amount": 100100, "formatted": "1001.00 MGA"},
        ],
    ),
    ("KWD", 5124): (
        "granularity",
        [{"amount": 5120, "formatted": "5.120 KWD"}, {"amount": 5130, "formatted": "5.130 KWD"}],
    ),
    ("BHD", 1): ("minimum", [{"amount": 10, "formatted": "0.010 BHD"}]),
    ("TND", 99999995): ("maximum", [{"amount": 99999990, "formatted": "99999.990 TND"}]),
    ("OMR", 12345): (
        "granularity",
        [
            {"amount": 12340, "formatted": "12.340 OMR"},
            {"amount": 12350, "formatted": "12.350 OMR"},
        ],
    ),
    ("USD", 49): ("minimum", [{"amount": 50, "formatted": "0.50 USD"}]),
    ("GBP", 29): ("minimum", [{"amount": 30, "formatted": "0.30 GBP"}]),
    ("JPY", 49): ("minimum", [{"amount": 50, "formatted": "50 JPY"}]),
    ("HUF", 17499): ("minimum", [{"amount": 17500, "formatted": "175.00 HUF"}]),
    ("EUR", 100000000): ("maximum", [{"amount": 99999999, "formatted": "999999.99 EUR"}]),
    ("ISK", 1000000): ("maximum", [{"amount": 999999, "formatted": "999999 ISK"}]),
    ("MGA", 10000000000): (
        "maximum",
        [{"amount": 9999999900, "formatted": "99999999.00 MGA"}],
    ),
    ("IQD", 5000): ("unsupported_currency", []),
    ("LYD", 5000): ("unsupported_currency", []),
}


def _body(currency: str, total: int) -> dict[str, Any]:
    body = order_body(currency=currency, payment={"method": "pm_card_visa"})
    body["items"] = [{"sku": "ONE", "name": "One thing", "quantity": 1, "unit_amount": total}]
    return body


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox(tmp_path, "sandbox") as running:
        yield running


@pytest.fixture
async def shop(database_url: str, box: Sandbox) -> AsyncIterator[Shop]:
    """orderguard on SQLite and on PostgreSQL, the sandbox its only provider."""
    async with open_shop(database_url, [box]) as running:
        yield running


async def test_every_special_currency_is_charged_exactly_in_stripes_units(
    shop: Shop, box: Sandbox
) -> None:
    charged: dict[str, tuple[int, int]] = {}
    for currency, (total, _) in CHARGED.items():
        response = await shop.place(body=_body(currency, total))
        assert response.status_code == 201, (currency, response.text)
        order = response.json()
        assert (order["state"], order["amount_total"]) == ("paid", total), (currency, order)
        [charge] = await box.charges(order["id"])
        assert charge["currency"] == currency.lower()
        charged[currency] = (order["amount_total"], charge["amount"])
    assert charged == CHARGED


async def test_what_stripe_cannot_charge_is_refused_before_anything_is_stored(
    shop: Shop, box: Sandbox
) -> None:
    answered: dict[tuple[str, int], tuple[str, list[dict[str, Any]]]] = {}
    for (currency, total), _ in REFUSED.items():
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        response = await shop.place(body=_body(currency, total), headers=headers)
        assert response.status_code == 422, (currency, total, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["type"] == "/problems/amount-not-chargeable"
        assert (problem["currency"], problem["amount"]) == (currency, total)
        assert currency in problem["detail"]
        for nearest in problem["nearest"]:
            assert nearest["formatted"] in problem["detail"]
        answered[currency, total] = (problem["rule"], problem["nearest"])
    assert answered == REFUSED
    assert await shop.order_ids() == []  # nothing stored
    assert (await box.ledger())["payment_intents"] == []  # nothing sent


async def test_a_refused_key_is_not_used_up_and_a_valid_total_then_charges(
    shop: Shop, box: Sandbox
) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    refused = await shop.place(body=_body("MGA", 100050), headers=headers)
    assert refused.status_code == 422, refused.text
    placed = await shop.place(body=_body("MGA", 100100), headers=headers)
    assert placed.status_code == 201, placed.text
    [charge] = await box.charges(placed.json()["id"])
    assert (charge["amount"], charge["currency"]) == (1001, "mga")


async def test_the_refusal_speaks_the_shoppers_language(shop: Shop) -> None:
    body = _body("USD", 49)
    body["locale"] = "zh-CN"
    response = await shop.place(body=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["title"] == "金额无法扣款"
    assert problem["detail"] == "0.49 USD 低于支付机构以 USD 扣款的最低金额：0.50 USD。"  # noqa: RUF001
    english = await shop.place(body=_body("USD", 49))
    assert english.json()["detail"] == (
        "0.49 USD is below the smallest amount the payment provider charges in USD: 0.50 USD."
    )


async def test_every_amount_read_back_from_stripe_is_in_iso_units(shop: Shop, box: Sandbox) -> None:
    response = await shop.place(body=_body("MGA", 250000))  # 2,500.00 MGA: 2500 at Stripe
    assert response.status_code == 201, response.text
    order = response.json()
    [attempt] = order["payment_attempts"]
    assert (order["state"], attempt["amount"]) == ("paid", 250000)  # the amount check passed
    provider = shop.slot("sandbox").provider
    ref = attempt["provider_ref"]

    assert (await provider.retrieve_payment(ref)).amount == 250000
    assert [p.amount for p in await provider.find_payments(order["id"])] == [250000]
    since = datetime.now(UTC) - timedelta(hours=1)
    charges = await provider.list_successful_charges(since, since + timedelta(hours=2))
    assert [(c.amount, c.currency) for c in charges] == [(250000, "MGA")]

    refund = await provider.refund(ref, amount=100000, idempotency_key=f"r-{uuid.uuid4()}")
    assert (refund.amount, refund.currency) == (100000, "MGA")
    [made] = (await box.ledger())["refunds"]
    assert made["amount"] == 1000  # 1,000.00 MGA in Stripe's units

    with pytest.raises(UnchargeableAmount):  # 0.50 MGA cannot be written: never sent
        await provider.refund(ref, amount=50, idempotency_key=f"r-{uuid.uuid4()}")
    assert len((await box.ledger())["refunds"]) == 1

    refunded = next(e for e in (await box.ledger())["events"] if e["type"] == "charge.refunded")
    event = provider.decode_webhook(json.dumps(refunded).encode())
    assert event.charge is not None  # Stripe's current shape: the cumulative amount
    assert (event.charge.amount_refunded, event.charge.currency) == (100000, "MGA")
    created = next(e for e in (await box.ledger())["events"] if e["type"] == "refund.created")
    made_event = provider.decode_webhook(json.dumps(created).encode())
    assert made_event.refund is not None
    assert (made_event.refund.amount, made_event.refund.currency) == (100000, "MGA")
    succeeded = next(
        e for e in (await box.ledger())["events"] if e["type"] == "payment_intent.succeeded"
    )
    paid = provider.decode_webhook(json.dumps(succeeded).encode())
    assert paid.payment is not None and paid.payment.amount == 250000
