"""Answering requests exactly once per Idempotency-Key (G2).

A request claims its key in the transaction that stores its effect. When its answer is
known at once the record holds it; when a provider must be called first the record is
"in flight" (locked for a while) and completed with the answer afterwards.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from orderguard.domain.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, OrderNotFound
from orderguard.domain.order import Order
from orderguard.services.clock import Clock
from orderguard.storage.ports import IdempotencyRecord, UnitOfWork, UnitOfWorkFactory

#: Renders an order as the response body stored for replays.
Renderer = Callable[[Order], bytes]


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer: a fresh result or a replay of the first answer."""

    order_id: str
    status: int
    body: bytes
    replayed: bool


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """Who sent which key with which request."""

    scope: str
    key: str
    #: :func:`fingerprint` of the request.
    fingerprint: str

    def record(
        self,
        at: datetime,
        order_id: str,
        *,
        body: bytes | None,
        status: int = 201,
        lock: timedelta = timedelta(0),
    ) -> IdempotencyRecord:
        """A record answered with ``body`` now, or in flight (``body=None``) for ``lock``."""
        return IdempotencyRecord(
            scope=self.scope,
            key=self.key,
            fingerprint=self.fingerprint,
            created_at=at,
            order_id=order_id,
            response_status=status if body is not None else None,
            response_body=body,
            locked_until=None if body is not None else at + lock,
        )

    async def complete(
        self, uow: UnitOfWork, order_id: str, body: bytes, status: int = 201
    ) -> None:
        """Store the final answer."""
        await uow.idempotency.complete(
            self.scope, self.key, order_id=order_id, status=status, body=body
        )


def fingerprint(method: str, path: str, body: object) -> str:
    """SHA-256 of the request line and the body as canonical JSON (sorted keys)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


class Replays:
    """Answers a request whose key was already claimed."""

    def __init__(self, storage: UnitOfWorkFactory, render: Renderer, clock: Clock) -> None:
        self._storage = storage
        self._render = render
        self._clock = clock

    async def answer(self, existing: IdempotencyRecord, request: KeyedRequest) -> Answer:
        """The first answer again; raises when the body differs or it is still in flight."""
        if existing.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused()
        if existing.response_status is not None and existing.response_body is not None:
            order_id = existing.order_id or ""
            return Answer(order_id, existing.response_status, existing.response_body, True)
        now = self._clock()
        if existing.locked_until is not None and existing.locked_until > now:
            raise IdempotencyKeyInFlight(math.ceil((existing.locked_until - now).total_seconds()))
        return await self._take_over(existing, request)

    async def _take_over(self, stale: IdempotencyRecord, request: KeyedRequest) -> Answer:
        """The first request died mid-flight: answer with the order as it stands now."""
        async with self._storage() as uow:
            order = await uow.orders.get(stale.order_id or "")
            if order is None:
                raise OrderNotFound(stale.order_id or "")
            body = self._render(order)
            await request.complete(uow, order.id, body)
            await uow.commit()
        return Answer(order.id, 201, body, replayed=True)
