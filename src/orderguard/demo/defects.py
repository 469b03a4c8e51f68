"""Defects the demo plants in the service AT WIRING, to prove its checker can fail.

Nothing here is a branch inside a service: each defect wraps a real part (a provider, the
storage, a service, the janitor's schedule) when the service is wired, through the one hook
in ``bootstrap.wire`` (:func:`plant`), so the services run exactly as in production and only
what they are wired with is broken. ``Settings.planted_defect`` switches one on
(``orderguard demo --plant-defect NAME``); production start refuses the setting.

Each defect breaks one of the demo's invariants (``demo/audit.py``), and ``orderguard demo``
must exit 1 naming it (``tests/e2e/test_demo.py``, each with a control run):

* ``answer_first`` → ``acknowledged_orders_lost``: intake answers ``201`` for every fifth new
  key before anything is stored, and the store never happens (as a crash between the answer
  and the commit would leave it);
* ``forget_keys`` → ``checkouts_with_two_orders``: the storage forgets every Idempotency-Key
  it has recorded, so a retried or double-clicked checkout without a merchant reference
  becomes a second order (one with a reference is refused as a duplicate: a ``409`` the
  demo cannot explain);
* ``recharge_unknown`` → ``orders_charged_twice``: a provider whose search finds nothing and
  which forgets idempotency keys, so an order whose answer was lost is charged again when
  its recheck re-sends the attempt, instead of being found;
* ``success_ignored`` → ``charges_without_an_order``: a provider whose lookups report a
  successful payment as still processing, so the recheck never learns of the success it
  asked about and the charge is held for an order that is not paid;
* ``janitor_asleep`` → ``orders_stuck_unflagged``: the janitor is wired with a schedule whose
  first wait is ten years, so stuck orders are never rechecked and never escalated;
* ``charge_amount`` → ``paid_amount_differs``: a provider that charges a tenth less than it
  is asked and answers with the amount asked, so orderguard settles a different amount;
* ``silent_paid`` → ``timeline_disagrees_with_state``: the storage saves an order's move to
  ``paid`` without its timeline entry;
* ``refund_amount`` → ``refunded_amount_differs``: a provider whose partial refunds send less
  than orderguard recorded, answering as if the amount asked had been refunded;
* ``pay_again_old_method`` → ``shoppers_misled``: paying again charges the method just
  declined instead of the one the shopper chose, so a shopper with a working card is
  declined again;
* ``three_ds_return_token`` → ``shoppers_misled``: back from 3-D Secure, the shopper is sent
  to a link with a foreign token, so their order page answers "not found".

Two are planted in one wallet's account only (``orderguard demo --provider alipay`` or
``wechatpay``, ``tests/e2e/test_demo_wallets.py``):

* ``alipay_amount_unchecked`` → ``paid_amount_differs``: the Alipay cashier is asked for
  :func:`short_amount` of the order, and what Alipay answers (its query, its notifications)
  settles the order without its amount being checked;
* ``wechatpay_expiry_without_close`` → ``shoppers_misled``: an expired order is cancelled
  without its payment being closed at WeChat Pay (and the payment is sent to stay open a
  day), so a shopper who comes back to the tab left open pays a cancelled order (the money
  is held for no paid order, ``charges_without_an_order``, until the sweep refunds it).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from orderguard.domain.events import EntryKind
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.providers.base import (
    ChargeRequest,
    DelegatingProvider,
    PaymentOutcome,
    PaymentProvider,
    PaymentResult,
    RefundResult,
    WebhookEvent,
)
from orderguard.services.pay_again import PayAgain
from orderguard.services.shopper_return import ShopperReturn

if TYPE_CHECKING:
    from orderguard.container import Container
    from orderguard.services.idempotency import Answer, KeyedRequest
    from orderguard.services.intake import Intake, PlaceOrder
    from orderguard.services.providers import Providers
    from orderguard.storage.ports import (
        ConsoleStore,
        IdempotencyRecord,
        OpsStats,
        ShopperRows,
        UnitOfWork,
        UnitOfWorkFactory,
    )

log = logging.getLogger("orderguard")


def short_amount(amount: int) -> int:
    """What the ``refund_amount`` and ``charge_amount`` defects send instead of ``amount``:
    about a tenth less, in whole tens of minor units (so the short amount stays one every
    provider takes, a three-decimal currency's included); ``amount`` itself when it is too
    small to shorten."""
    shortfall = max(10, amount // 100 * 10)
    return amount - shortfall if amount > shortfall else amount


# -- providers ----------------------------------------------------------------------------


class ShortRefunds(DelegatingProvider):
    """DELIBERATELY WRONG: a provider whose partial refunds send less than was asked and
    answer as if the asked amount had been refunded (the ``refund_amount`` defect)."""

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
        sent = None if amount is None else short_amount(amount)
        made = await self.inner.refund(
            provider_ref,
            amount=sent,
            idempotency_key=idempotency_key,
            metadata=metadata,
            currency=currency,
        )
        return made if amount is None else replace(made, amount=amount)


class ShortCharges(DelegatingProvider):
    """DELIBERATELY WRONG: a provider that charges :func:`short_amount` of what it is asked
    and answers a success with the amount asked (the ``charge_amount`` defect)."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        result = await self.inner.create_payment(
            replace(request, amount=short_amount(request.amount))
        )
        if result.outcome is PaymentOutcome.SUCCEEDED:
            return replace(result, amount=request.amount)
        return result


class ForgetfulKeys(DelegatingProvider):
    """DELIBERATELY WRONG: a provider whose search finds nothing and which charges a request
    sent again under a key it has seen as a new one (the ``recharge_unknown`` defect): an
    order whose answer was lost is charged a second time when its recheck re-sends it."""

    def __init__(self, inner: PaymentProvider) -> None:
        super().__init__(inner)
        self._seen: set[str] = set()

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        key = request.idempotency_key
        if key in self._seen:
            request = replace(request, idempotency_key=f"defect-{uuid.uuid4()}")
        self._seen.add(key)
        return await self.inner.create_payment(request)

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return []


class HiddenSuccess(DelegatingProvider):
    """DELIBERATELY WRONG: a provider whose lookups report a successful payment as still
    processing (the ``success_ignored`` defect): a recheck never learns of the success."""

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        return _hidden(await self.inner.retrieve_payment(provider_ref))

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return [_hidden(r) for r in await self.inner.find_payments(order_id)]


def _hidden(result: PaymentResult) -> PaymentResult:
    if result.outcome is PaymentOutcome.SUCCEEDED:
        return replace(result, outcome=PaymentOutcome.PENDING)
    return result


class UncheckedWalletAmounts(DelegatingProvider):
    """DELIBERATELY WRONG: a wallet asked for :func:`short_amount` of each payment, whose
    answers settle the order without their amount (``alipay_amount_unchecked``): the
    amount a query or a notification carries is dropped, so orderguard takes the
    attempt's (the order's total) as paid."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        return await self.inner.create_payment(
            replace(request, amount=short_amount(request.amount))
        )

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        return replace(await self.inner.retrieve_payment(provider_ref), amount=None)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return _amountless(self.inner.parse_webhook(body, headers))

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        return _amountless(self.inner.decode_webhook(body))


def _amountless(event: WebhookEvent) -> WebhookEvent:
    if event.payment is None:
        return event
    return replace(event, payment=replace(event.payment, amount=None))


#: How long the ``wechatpay_expiry_without_close`` defect leaves a payment open.
LEFT_OPEN = timedelta(days=1)


class ExpiryWithoutClose(DelegatingProvider):
    """DELIBERATELY WRONG: payments sent to stay open :data:`LEFT_OPEN`, and "cancelled"
    without a word to the wallet (``wechatpay_expiry_without_close``): the order is
    cancelled while its payment can still be made."""

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        return await self.inner.create_payment(
            replace(request, expires_at=datetime.now(UTC) + LEFT_OPEN)
        )

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        return PaymentResult(
            outcome=PaymentOutcome.FAILED, provider_ref=provider_ref, decline_code="closed"
        )


# -- storage ------------------------------------------------------------------------------


class _UnitProxy:
    """A unit of work passing everything to ``inner``, with its repository ``part`` (made
    when the unit begins) wrapped by ``wrap``."""

    def __init__(self, inner: UnitOfWork, part: str, wrap: Callable[[Any], Any]) -> None:
        self._inner = inner
        self._part = part
        self._wrap = wrap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> _UnitProxy:
        await self._inner.__aenter__()
        setattr(self, self._part, self._wrap(getattr(self._inner, self._part)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)


class _Delegate:
    """A repository passing everything to ``inner`` except what a defect overrides."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ForgottenKeys(_Delegate):
    """DELIBERATELY WRONG: idempotency records written and never found (``forget_keys``)."""

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Record the key, and answer as if it had never been seen."""
        await cast(Any, self._inner).claim(record)
        return None

    async def claim_for(self, record: IdempotencyRecord, order: Order) -> IdempotencyRecord | None:
        """Store the order, under a key nobody sends again when the key was seen."""
        inner = cast(Any, self._inner)
        if await inner.claim_for(record, order) is not None:
            await inner.claim_for(replace(record, key=f"{record.key} {order.id}"), order)
        return None


class _SilentPaid(_Delegate):
    """DELIBERATELY WRONG: orders saved paid without that move's timeline entry
    (``silent_paid``)."""

    async def save(self, order: Order) -> None:
        """Save the order without the timeline entries of its moves to ``paid``."""
        order.new_entries[:] = [
            e
            for e in order.new_entries
            if not (e.kind is EntryKind.STATE_CHANGED and e.to_state is OrderState.PAID)
        ]
        await cast(Any, self._inner).save(order)


class WrappedStorage:
    """A unit-of-work factory whose units have one repository replaced by ``wrap``'s."""

    def __init__(self, inner: UnitOfWorkFactory, part: str, wrap: Callable[[Any], Any]) -> None:
        self.inner = inner
        self._part = part
        self._wrap = wrap

    def __call__(self) -> UnitOfWork:
        return cast("UnitOfWork", _UnitProxy(self.inner(), self._part, self._wrap))

    def reader(self) -> UnitOfWork:
        """A read-only unit, with the same repository replaced."""
        return cast("UnitOfWork", _UnitProxy(self.inner.reader(), self._part, self._wrap))

    @property
    def console(self) -> ConsoleStore:
        return self.inner.console

    @property
    def stats(self) -> OpsStats:
        return self.inner.stats

    @property
    def shopper_rows(self) -> ShopperRows:
        return self.inner.shopper_rows

    async def close(self) -> None:
        await self.inner.close()


# -- services -----------------------------------------------------------------------------


class AnswerFirst:
    """DELIBERATELY WRONG: an intake that answers ``201`` for every ``every``-th new key
    before the order is stored, and never stores it (the ``answer_first`` defect); a
    request sent again with that key gets the same answer."""

    def __init__(self, inner: Intake, render: Callable[[Order], bytes], every: int = 5) -> None:
        self.inner = inner
        self._render = render
        self._every = every
        self._keys: set[str] = set()
        self._answered: dict[str, Answer] = {}

    async def place(self, command: PlaceOrder) -> Answer:
        from orderguard.services.idempotency import Answer

        key = command.request.key
        if key in self._answered:
            return replace(self._answered[key], replayed=True)
        first_sight = key not in self._keys
        self._keys.add(key)
        if not first_sight or len(self._keys) % self._every != 1:
            return await self.inner.place(command)
        order = Order.place(
            currency=command.currency,
            lines=command.lines,
            customer=command.customer,
            at=datetime.now(UTC),
            merchant_reference=command.merchant_reference,
            locale=command.locale,
        )
        self._answered[key] = Answer(order.id, 201, self._render(order), replayed=False)
        return self._answered[key]


#: The janitor's only wait under the ``janitor_asleep`` defect.
ASLEEP = timedelta(days=3650)


def _asleep(container: Container) -> None:
    schedule = container.janitor.schedule
    container.janitor.schedule = replace(schedule, waits=dict.fromkeys(schedule.waits, (ASLEEP,)))


def _answer_first(container: Container) -> None:
    from functools import partial

    from orderguard.api.render import order_json

    settings, payments = container.settings, container.payments
    render = partial(order_json, public_url=settings.public_url, actions=payments.shopper_action)
    container.intake = cast("Intake", AnswerFirst(container.intake, render))


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


def _pay_again_old_method(container: Container) -> None:
    container.pay_again = PayAgainOldMethod(container.pay_again, container.storage)


def _three_ds_return_token(container: Container) -> None:
    container.shopper_return = ReturnWithForeignToken(container.shopper_return)


# -- the registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class Defect:
    """One deliberate defect: the invariant it must break, and what it wraps."""

    breaks: str
    provider: Callable[[PaymentProvider], PaymentProvider] | None = None
    #: The provider whose accounts ``provider`` wraps (None: every account).
    only: str | None = None
    storage: Callable[[UnitOfWorkFactory], UnitOfWorkFactory] | None = None
    services: Callable[[Container], None] | None = None


#: Every defect the demo can plant, by name (``config.PLANTED_DEFECTS`` is these names).
DEFECTS: dict[str, Defect] = {
    "answer_first": Defect("acknowledged_orders_lost", services=_answer_first),
    "forget_keys": Defect(
        "checkouts_with_two_orders",
        storage=lambda s: WrappedStorage(s, "idempotency", _ForgottenKeys),
    ),
    "recharge_unknown": Defect("orders_charged_twice", provider=ForgetfulKeys),
    "success_ignored": Defect("charges_without_an_order", provider=HiddenSuccess),
    "janitor_asleep": Defect("orders_stuck_unflagged", services=_asleep),
    "charge_amount": Defect("paid_amount_differs", provider=ShortCharges),
    "silent_paid": Defect(
        "timeline_disagrees_with_state",
        storage=lambda s: WrappedStorage(s, "orders", _SilentPaid),
    ),
    "refund_amount": Defect("refunded_amount_differs", provider=ShortRefunds),
    "pay_again_old_method": Defect("shoppers_misled", services=_pay_again_old_method),
    "three_ds_return_token": Defect("shoppers_misled", services=_three_ds_return_token),
    "alipay_amount_unchecked": Defect(
        "paid_amount_differs", provider=UncheckedWalletAmounts, only="alipay"
    ),
    "wechatpay_expiry_without_close": Defect(
        "shoppers_misled", provider=ExpiryWithoutClose, only="wechatpay"
    ),
}


def plant(
    name: str,
    build: Callable[[UnitOfWorkFactory, Providers], Container],
    storage: UnitOfWorkFactory,
    providers: Providers,
) -> Container:
    """The service ``build`` wires from ``storage`` and ``providers``, with the defect
    ``name`` planted: its wrappers put around the parts, then around the services."""
    from orderguard.services.providers import Providers, ProviderSlot

    defect, unplanted = DEFECTS[name], storage
    log.warning("PLANTED DEFECT %r is on: this service is broken on purpose", name)
    if defect.storage is not None:
        storage = defect.storage(storage)
    if defect.provider is not None:
        wrap = defect.provider
        providers = Providers(
            [
                ProviderSlot(
                    wrap(s.provider) if defect.only in (None, s.name) else s.provider,
                    s.breaker,
                    livemode=s.livemode,
                    profile=s.profile,  # the methods it takes: a wallet's stay its own
                )
                for s in providers.slots
            ]
        )
    container = build(storage, providers)
    container.storage = unplanted  # only the services get the broken storage
    if defect.services is not None:
        defect.services(container)
    return container
