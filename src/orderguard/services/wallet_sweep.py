"""The sweep's eyes on the providers that cannot list their charges (G3, G4, G5).

Alipay and WeChat Pay keep no list of charges by time (only daily bills) and no search by
order: the sweep of :mod:`.sweep` cannot see what they took. A shopper can still pay such
a wallet after orderguard cancelled the order: the close lost the race (Alipay's trade did
not exist yet when it was closed, and the shopper opened the cashier afterwards), the
close's answer was lost, or a notification came for a cancelled order. So each sweep asks
the wallet about the trades of the orders cancelled in its window, by their
``out_trade_no`` (the attempt's reference, ``retrieve_payment``), and hands every trade
found paid to the sweep as a charge, which applies the product's one policy for a charge
after cancellation: refunded (its key derived from the charge, so a repeat never refunds
twice) and noted, or flagged when refunds are off.

Bounded: at most ``batch`` orders per sweep, the next sweep going on from where this one
stopped (a cursor in this process; back to the window's start once the end is reached),
and at most ``per_second`` questions per second. A trade already resolved by an earlier
sweep (a finding) is not asked about again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import OrderState
from orderguard.providers.base import Charge, PaymentOutcome, ProviderError
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.sweep")

#: Orders whose trades one sweep asks about, at most.
DEFAULT_BATCH = 200
#: Questions to one wallet per second, at most.
DEFAULT_PER_SECOND = 5.0
#: The order state whose trades are asked about: a paid trade there is one too many.
SWEPT_STATE = OrderState.CANCELLED
Sleep = Callable[[float], Awaitable[None]]
#: ``(provider, provider_ref)`` of the trades an earlier sweep already resolved.
Resolved = set[tuple[str, str]]


@dataclass
class Asked:
    """What one round of questions found."""

    found: list[tuple[ProviderSlot, Charge]] = field(default_factory=list)
    #: Trades asked about.
    asked: int = 0
    #: Questions that failed; the next round asks again.
    errors: int = 0


def asks_by_query(slot: ProviderSlot) -> bool:
    """Whether the sweep must ask ``slot`` trade by trade: it answers by reference but
    cannot list its charges."""
    caps = slot.capabilities
    return caps.retrieve_by_reference and not caps.list_recent_charges


class TradeQueries:
    """Asks the query-only wallets about the trades of recently cancelled orders."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        providers: Providers,
        *,
        batch: int = DEFAULT_BATCH,
        per_second: float = DEFAULT_PER_SECOND,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._storage, self._providers = storage, providers
        self._batch, self._gap = batch, 1.0 / per_second if per_second > 0 else 0.0
        self._sleep = sleep
        self._cursor: tuple[datetime, str] | None = None
        self._last_call = float("-inf")

    async def paid_trades(self, *, since: datetime, resolved: Resolved) -> Asked:
        """The paid trades of the next ``batch`` orders cancelled since ``since``."""
        slots = {s.name: s for s in self._providers.slots if asks_by_query(s)}
        result = Asked()
        if not slots:
            return result
        for order in await self._next_orders(since):
            for attempt in order.attempts:
                slot = slots.get(attempt.provider)
                ref = attempt.provider_ref
                if slot is None or not ref or (slot.name, ref) in resolved:
                    continue
                charge = await self._ask(slot, order, attempt, ref, result)
                if charge is not None:
                    result.found.append((slot, charge))
        return result

    async def _next_orders(self, since: datetime) -> list[Order]:
        """The next page of cancelled orders after the cursor (then the cursor moves on)."""
        after = self._cursor if self._cursor and self._cursor[0] >= since else None
        async with self._storage() as uow:
            page = await uow.orders.changed_in_state(
                SWEPT_STATE, since=since, after=after, limit=self._batch
            )
            orders = [await uow.orders.get(order_id) for _, order_id in page]
        self._cursor = page[-1] if len(page) == self._batch else None
        return [o for o in orders if o is not None]

    async def _ask(
        self, slot: ProviderSlot, order: Order, attempt: PaymentAttempt, ref: str, result: Asked
    ) -> Charge | None:
        """The trade as a charge when the wallet says it was paid; else ``None``."""
        await self._pace()
        result.asked += 1
        try:
            found = await slot.provider.retrieve_payment(ref)
        except ProviderError as exc:
            log.warning("cannot ask %s about trade %s, next sweep: %s", slot.name, ref, exc)
            result.errors += 1
            return None
        if found.outcome is not PaymentOutcome.SUCCEEDED:
            return None
        return Charge(
            provider_ref=ref,
            amount=found.amount if found.amount is not None else attempt.amount,
            currency=(found.currency or attempt.currency).upper(),
            created_at=found.created_at or attempt.updated_at,
            order_id=order.id,
            attempt_id=attempt.id,
            metadata=found.metadata,
        )

    async def _pace(self) -> None:
        """Wait until a question is allowed: ``per_second`` at most."""
        wait = self._last_call + self._gap - time.monotonic()
        if wait > 0:
            await self._sleep(wait)
        self._last_call = time.monotonic()
