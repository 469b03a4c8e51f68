"""Order intake: validate, then store order, timeline, outbox event and idempotency record
in one transaction (G1, G2), committed before any payment provider is called."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson

from orderguard.domain.customer import Customer
from orderguard.domain.errors import (
    DuplicateMerchantReference,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    OrderNotFound,
)
from orderguard.domain.order import Order, OrderLine
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import IdempotencyRecord, UnitOfWorkFactory

#: Renders an order as the response body stored for replays.
Renderer = Callable[[Order], bytes]


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A validated request to place an order under an idempotency key."""

    scope: str
    idempotency_key: str
    fingerprint: str
    currency: str
    lines: list[OrderLine]
    customer: Customer
    merchant_reference: str | None = None
    locale: str = "en"
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What to answer: a new order (201) or a replay of the first answer."""

    order_id: str
    status: int
    body: bytes
    replayed: bool


def fingerprint(method: str, path: str, body: object) -> str:
    """SHA-256 of the request line and the body as canonical JSON (sorted keys)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


class Intake:
    """Places orders exactly once per idempotency key."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        render: Renderer,
        *,
        clock: Clock = system_clock,
        in_flight_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self._storage = storage
        self._render = render
        self._clock = clock
        self._in_flight_timeout = in_flight_timeout

    async def place(self, command: PlaceOrder) -> IntakeResult:
        """Store a new order, or replay the answer already given for this key.

        Raises ``InvalidOrder``, ``IdempotencyKeyReused``, ``IdempotencyKeyInFlight`` or
        ``DuplicateMerchantReference``; none of them stores anything or burns the key.
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
        )
        body = self._render(order)
        record = IdempotencyRecord(
            scope=command.scope,
            key=command.idempotency_key,
            fingerprint=command.fingerprint,
            created_at=now,
            order_id=order.id,
            response_status=201,
            response_body=body,
        )
        try:
            async with self._storage() as uow:
                existing = await uow.idempotency.claim(record)
                if existing is None:
                    await uow.orders.add(order)
                    await uow.commit()
                    return IntakeResult(order.id, 201, body, replayed=False)
        except DuplicateMerchantReference as exc:
            raise await self._name_existing(exc) from None
        return await self._replay(existing, command)

    async def _replay(self, existing: IdempotencyRecord, command: PlaceOrder) -> IntakeResult:
        if existing.fingerprint != command.fingerprint:
            raise IdempotencyKeyReused()
        if existing.response_status is not None and existing.response_body is not None:
            order_id = existing.order_id or ""
            return IntakeResult(order_id, existing.response_status, existing.response_body, True)
        now = self._clock()
        if existing.locked_until is not None and existing.locked_until > now:
            raise IdempotencyKeyInFlight(math.ceil((existing.locked_until - now).total_seconds()))
        return await self._take_over(existing)

    async def _take_over(self, stale: IdempotencyRecord) -> IntakeResult:
        """The first request died mid-flight: answer with the order as it stands now."""
        async with self._storage() as uow:
            order = await uow.orders.get(stale.order_id or "")
            if order is None:
                raise OrderNotFound(stale.order_id or "")
            body = self._render(order)
            await uow.idempotency.complete(
                stale.scope, stale.key, order_id=order.id, status=201, body=body
            )
            await uow.commit()
        return IntakeResult(order.id, 201, body, replayed=True)

    async def _name_existing(self, exc: DuplicateMerchantReference) -> Exception:
        """A concurrent insert won the race: find the order that holds the reference."""
        if exc.existing_order_id:
            return exc
        async with self._storage() as uow:
            order_id = await uow.orders.find_by_reference(exc.merchant_reference)
        return DuplicateMerchantReference(exc.merchant_reference, order_id or "unknown")
