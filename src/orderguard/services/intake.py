"""Order intake (G1, G2): the order, its timeline entry, its outbox event, its idempotency
record and (when a payment method is given) its first payment attempt are stored in one
transaction, committed before any payment provider is called."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from orderguard.domain.customer import Customer
from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import Cause
from orderguard.domain.money import AmountNotChargeable, AmountRefusal, Money
from orderguard.domain.order import Order, OrderLine, PaymentAttempt
from orderguard.services.clock import Clock, system_clock
from orderguard.services.idempotency import Answer, KeyedRequest, Renderer, Replays
from orderguard.services.payments import Payments
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.settling import Answered, Reply, settle
from orderguard.storage.ports import UnitOfWorkFactory

#: Extra time an in-flight key stays locked beyond the payment time budget.
LOCK_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A validated request to place an order under an idempotency key."""

    request: KeyedRequest
    currency: str
    lines: list[OrderLine]
    customer: Customer
    merchant_reference: str | None = None
    locale: str = "en"
    payment_method: str | None = None
    request_id: str | None = None
    #: Who placed it (an API key's id), named on every timeline entry the request causes.
    actor: str | None = None


class Intake:
    """Places orders exactly once per idempotency key, then starts their payment."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        render: Renderer,
        payments: Payments | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._render = render
        self._payments = payments
        self._clock = clock
        self._replays = Replays(storage, render, clock)

    async def place(self, command: PlaceOrder) -> Answer:
        """Store a new order (and charge it), or replay the answer given for this key.

        Raises ``InvalidOrder``, ``AmountNotChargeable``, ``IdempotencyKeyReused``,
        ``IdempotencyKeyInFlight`` or ``DuplicateMerchantReference``; none of them stores
        anything or uses up the key.
        """
        now = self._clock()
        order = Order.place(
            currency=command.currency,
            lines=command.lines,
            customer=command.customer,
            at=now,
            merchant_reference=command.merchant_reference,
            locale=command.locale,
            request_id=command.request_id,
            livemode=self._payments is not None and self._payments.providers.livemode,
        )
        if self._payments is not None:
            check_chargeable(
                charging_slots(self._payments.providers, command.payment_method, order.total),
                order.total,
            )
            if command.payment_method is not None:  # refused before anything is stored
                self._payments.providers.check_method(command.payment_method)
        charging = command.payment_method is not None and self._payments is not None
        body = None if charging else self._render(order)
        record = command.request.record(now, order.id, body=body, lock=self._lock())
        # the attempt prepared before the claim where that changes nothing anywhere (the
        # provider's breaker closed): the key, the order and its attempt then go together
        # (one statement on PostgreSQL); a replay drops it unsent
        attempt = self._prepare_quietly(order, command.payment_method) if charging else None
        try:
            async with self._storage() as uow:
                if attempt is not None:
                    _attribute(order, command.actor)
                    existing = await uow.idempotency.claim_for(record, order)
                elif charging:
                    existing = await uow.idempotency.claim(record)
                    if existing is None:  # a replay never touches a provider or its breaker
                        attempt = self._prepare(order, command.payment_method)
                        _attribute(order, command.actor)
                        if attempt is None:  # no provider up: answered at once
                            body = self._render(order)
                            await command.request.complete(uow, order.id, body)
                        await uow.orders.add(order)
                else:  # the key, the order and all it holds: one statement where it can
                    _attribute(order, command.actor)
                    existing = await uow.idempotency.claim_for(record, order)
                if existing is None:
                    await uow.commit()
        except DuplicateMerchantReference as exc:
            raise await self._name_existing(exc) from None
        if existing is not None:
            return await self._replays.answer(existing, command.request)
        if attempt is None or self._payments is None:
            return Answer(order.id, 201, body or self._render(order), replayed=False)
        return await charge(
            self._storage,
            self._payments,
            self._render,
            order,
            attempt,
            command.request,
            self._clock,
            actor=command.actor,
        )

    def _prepare(self, order: Order, method: str | None) -> PaymentAttempt | None:
        if method is None or self._payments is None:
            return None
        return self._payments.prepare(order, method, cause=Cause.API, at=order.created_at)

    def _prepare_quietly(self, order: Order, method: str | None) -> PaymentAttempt | None:
        if method is None or self._payments is None:
            return None
        return self._payments.prepare_quietly(order, method, cause=Cause.API, at=order.created_at)

    def _lock(self) -> timedelta:
        budget = self._payments.settings.time_budget_s if self._payments else 0.0
        return timedelta(seconds=budget) + LOCK_MARGIN

    async def _name_existing(self, exc: DuplicateMerchantReference) -> Exception:
        """A concurrent insert won the race: find the order that holds the reference."""
        if exc.existing_order_id:
            return exc
        async with self._storage() as uow:
            order_id = await uow.orders.find_by_reference(exc.merchant_reference)
        return DuplicateMerchantReference(exc.merchant_reference, order_id or "unknown")


def _attribute(order: Order, actor: str | None) -> None:
    """Name ``actor`` (who placed it) on the order's new timeline entries."""
    if actor is not None:
        order.attribute_to(actor)


def charging_slots(providers: Providers, method: str | None, total: Money) -> list[ProviderSlot]:
    """The providers an order paid with ``method`` can be charged at: those taking the
    method (a wallet that takes CNY only has no say over a card order in euros). With no
    method yet (chosen when paying later), the first family of providers taking the same
    methods that can all charge ``total`` (the shopper will pay with one of theirs); when
    none can, every configured one, so that the refusal names the first that cannot."""
    if method:
        return providers.taking(method)
    families: dict[tuple[str, ...], list[ProviderSlot]] = {}
    for slot in providers.slots:
        families.setdefault(slot.profile.methods, []).append(slot)
    for family in families.values():
        if all(s.provider.amount_rules(total.currency).allows(total.amount) for s in family):
            return family
    return list(providers.slots)


def check_chargeable(slots: Sequence[ProviderSlot], total: Money) -> None:
    """Raise :class:`AmountNotChargeable` unless every configured provider can charge ``total``.

    An attempt goes to the primary or, when its circuit is open, to a fail-over provider, so
    an order is taken only when whichever of them it reaches can charge it. The refusal names
    the first provider that cannot, and, of the amounts the providers offer instead, the
    closest below and above ``total`` that all of them can charge.
    """
    for slot in slots:
        refusal = slot.provider.amount_rules(total.currency).refusal(total.amount)
        if refusal is None:
            continue
        rules = [s.provider.amount_rules(total.currency) for s in slots]
        offers = {a for r in rules for a in (r.refusal(total.amount) or refusal).nearest}
        valid = [a for a in offers if all(r.allows(a) for r in rules)]
        below = [a for a in valid if a < total.amount]
        above = [a for a in valid if a > total.amount]
        nearest = tuple([max(below)] if below else []) + tuple([min(above)] if above else [])
        raise AmountNotChargeable(
            AmountRefusal(refusal.currency, refusal.amount, refusal.limit, nearest), slot.name
        )


async def charge(
    storage: UnitOfWorkFactory,
    payments: Payments,
    render: Renderer,
    order: Order,
    attempt: PaymentAttempt,
    request: KeyedRequest,
    clock: Clock,
    *,
    actor: str | None = None,
) -> Answer:
    """Send a committed attempt, apply its outcome and store the final answer (``actor``,
    who asked, named on what it changed). ``order`` is the order as committed with the
    attempt; it is handed over to the settling (see :func:`settle`'s ``known``)."""
    outcome = await payments.send(order, attempt)
    settled = await settle(
        storage,
        order.id,
        [Answered(attempt.id, outcome)],
        cause=Cause.API,
        clock=clock,
        actor=actor,
        reply=Reply(request, render),
        known=order,  # as committed with the attempt: not read back unless it changed
    )
    assert settled.body is not None  # a reply was given
    return Answer(settled.order.id, 201, settled.body, replayed=False)
