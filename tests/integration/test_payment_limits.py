"""Explicit limits on provider calls: the time budget, and amounts checked against the order."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from orderguard.providers.base import ChargeRequest, PaymentResult
from orderguard.providers.memory import InMemoryProvider
from tests.integration.conftest import Api
from tests.integration.test_payments_api import VISA, charges, place


class Hanging(InMemoryProvider):
    """Charges, then never answers: it waits for an event nobody sets."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        await super().create_payment(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Shortchanging(InMemoryProvider):
    """Confirms a success of one minor unit less than asked."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        result = await super().create_payment(request)
        return replace(result, amount=(result.amount or 0) - 1)


def _swap(api: Api, provider: InMemoryProvider) -> None:
    api.container.payments.providers.primary.provider = provider
    api.provider = provider


async def test_intake_answers_within_its_time_budget_when_the_provider_hangs(api: Api) -> None:
    _swap(api, Hanging(name="memory"))
    api.container.payments.settings = replace(api.container.payments.settings, time_budget_s=0.3)
    # the provider never answers, so any answer at all is the budget's; the generous deadline
    # only keeps a broken budget from hanging the suite
    order: dict[str, Any] = await asyncio.wait_for(place(api, VISA), timeout=60)
    assert order["state"] == "payment_unknown"
    notes = [
        e["note"] for e in (await api.client.get(f"/v1/orders/{order['id']}")).json()["timeline"]
    ]
    assert any("no answer within the time budget" in n for n in notes)
    assert len(charges(api.provider, order["id"])) == 1  # it did charge: recheck will see it


async def test_a_confirmed_amount_that_differs_from_the_order_is_flagged_not_paid(
    api: Api,
) -> None:
    _swap(api, Shortchanging(name="memory"))
    order = await place(api, VISA)
    assert order["state"] == "payment_pending"
    assert order["flag_reason"].startswith("amount mismatch")
    assert order["payment_attempts"][0]["state"] == "succeeded"
