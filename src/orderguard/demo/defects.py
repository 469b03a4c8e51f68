"""Defects the demo plants in the service AT WIRING, to prove its checker can fail.

Nothing here is a branch inside a service: each defect wraps a real component before the
service is built (see ``bootstrap.slot``), so the services run exactly as in production and
only what they are wired with is broken. ``Settings.planted_defect`` switches one on
(``orderguard demo --plant-defect NAME``); production start refuses the setting.

* ``refund_amount``: the provider is sent a different (smaller) refund amount than the one
  orderguard recorded, while the provider's answer is reported back with the recorded amount,
  so orderguard believes the refund it asked for was made. The demo's
  ``refunded_amount_differs`` invariant must catch it against the provider's ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from orderguard.domain.money import AmountRule
from orderguard.providers.base import (
    Charge,
    ChargeRequest,
    PaymentProvider,
    PaymentResult,
    RefundResult,
    WebhookEvent,
)
from orderguard.services.idempotency import Answer, KeyedRequest
from orderguard.services.pay_again import PayAgain
from orderguard.services.shopper_return import ShopperReturn
from orderguard.storage.ports import UnitOfWorkFactory

if TYPE_CHECKING:
    from orderguard.bootstrap import Container
    from orderguard.domain.order import Order

#: Defects applied by wrapping the provider (the others live where ``PLANTED_DEFECTS`` says).
PROVIDER_DEFECTS = ("refund_amount",)


def short_amount(amount: int) -> int:
    """What the ``refund_amount`` defect sends instead of ``amount``: about a tenth less, in
    whole tens of minor units (so the short amount stays one every provider can refund, a
    three-decimal currency's included); ``amount`` itself when it is too small to shorten."""
    shortfall = max(10, amount // 100 * 10)
    return amount - shortfall if amount > shortfall else amount


class ShortRefunds:
    """DELIBERATELY WRONG: a provider whose partial refunds send less than was asked and
    answer as if the asked amount had been refunded (the ``refund_amount`` defect)."""

    def __init__(self, inner: PaymentProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund :func:`short_amount` of ``amount`` and say ``amount`` was refunded."""
        if amount is None or short_amount(amount) == amount:
            return await self.inner.refund(
                provider_ref,
                amount=amount,
                idempotency_key=idempotency_key,
                metadata=metadata,
                currency=currency,
            )
        made = await self.inner.refund(
            provider_ref,
            amount=short_amount(amount),
            idempotency_key=idempotency_key,
            metadata=metadata,
            currency=currency,
        )
        return replace(made, amount=amount)

    def amount_rules(self, currency: str) -> AmountRule:
        return self.inner.amount_rules(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        return self.inner.to_provider_units(amount, currency)

    def from_provider_units(self, amount: int, currency: str) -> int:
        return self.inner.from_provider_units(amount, currency)

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        return await self.inner.create_payment(request)

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        return await self.inner.retrieve_payment(provider_ref)

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return await self.inner.find_payments(order_id)

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        return await self.inner.cancel_payment(provider_ref)

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        return await self.inner.list_successful_charges(since, until)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return self.inner.parse_webhook(body, headers)

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        return self.inner.decode_webhook(body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def plant_in_provider(defect: str | None, provider: PaymentProvider) -> PaymentProvider:
    """``provider`` wrapped by ``defect`` when it is one of :data:`PROVIDER_DEFECTS`, else
    ``provider`` itself."""
    if defect == "refund_amount":
        return ShortRefunds(provider)
    return provider


# -- defects the shopper's side of the demo catches (issue 17, point 3) -----------------------
#
# Each wraps a service of the wired container (``bootstrap.wire`` calls
# :func:`plant_in_services`); the services themselves are untouched. The demo's
# ``shoppers_misled`` invariant must name each.

#: Defects applied by wrapping a service of the container.
SERVICE_DEFECTS = ("pay_again_old_method", "three_ds_return_token")


class PayAgainOldMethod(PayAgain):
    """DELIBERATELY WRONG: paying again charges the method the order's last attempt used
    (the one just declined) instead of the one the shopper chose (``pay_again_old_method``).
    The shopper pays with a card that works and is declined again."""

    def __init__(self, inner: PayAgain, storage: UnitOfWorkFactory) -> None:
        # no super().__init__(): every payment goes through ``inner``
        self.inner, self.storage = inner, storage

    async def pay(
        self, order_id: str, method: str, request: KeyedRequest, *, actor: str | None = None
    ) -> Answer:
        async with self.storage() as uow:
            order = await uow.orders.get(order_id)
        if order is not None and order.attempts:
            method = order.attempts[-1].method
        return await self.inner.pay(order_id, method, request, actor=actor)


class ReturnWithForeignToken(ShopperReturn):
    """DELIBERATELY WRONG: back from 3-D Secure, the order is brought up to date as it should
    be, but the shopper is sent to a link made with a fresh token instead of the order's
    own (``three_ds_return_token``): their order page answers "not found"."""

    def __init__(self, inner: ShopperReturn) -> None:
        # no super().__init__(): every question goes through ``inner``
        self.inner = inner

    async def order(self, order: Order) -> Order:
        answered = await self.inner.order(order)
        return replace(answered, status_token=secrets.token_urlsafe(24))


def plant_in_services(defect: str | None, container: Container) -> Container:
    """``container`` with a service wrapped by ``defect`` when it is one of
    :data:`SERVICE_DEFECTS`, else ``container`` itself."""
    if defect == "pay_again_old_method":
        return replace(
            container, pay_again=PayAgainOldMethod(container.pay_again, container.storage)
        )
    if defect == "three_ds_return_token":
        return replace(container, shopper_return=ReturnWithForeignToken(container.shopper_return))
    return container
