"""The refund check (issue 19): looks up, at its provider, every refund still ``pending``
past its schedule's wait, and settles it the way the provider's notification would have.

A refund stays pending when the provider's answer to the request was lost, or when it
accepted the refund as processing and its notification (webhook) never came. Without a
lookup such a refund waited for a person. Here each due refund is asked about with the
adapter's ``retrieve_refund`` (found by the provider's refund id, else by the key and
``refund_id`` it was sent with), and the answer goes through the rule the webhook and the
request's own answer use (:func:`~orderguard.domain.refund.settle_refund`: the refund
record, the order's timeline and state, a flag when an accepted refund failed, and the
outbox event, all in one transaction).

What the provider says, and what happens:

* ``succeeded`` / ``failed``: settled (a failure after acceptance flags *refund failed*).
* ``pending``: looked up again later (its reference is recorded if it was missing).
* no such refund: the request never reached the provider; the *pending refunds* duty
  (:meth:`.Operations.retry_refunds`) sends it again while the provider keeps its key.
* no answer (timeout, 5xx, a system error): unknown, looked up again later; never failed.
* another amount than the record's: nothing applied, the order flagged at once.

Each lookup counts; when the schedule (:mod:`orderguard.domain.refund_schedule`) runs out
the order is flagged *refund still unresolved* once, and daily lookups go on so a late
answer still settles it. Orders are leased like the janitor's (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, under an owner of its own): any number of workers share the work and a
dead worker's leases expire. The provider is asked between two transactions, outside both.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.refund import settle_refund
from orderguard.domain.refund_record import Refund, RefundState, refund_state_of
from orderguard.domain.refund_schedule import RefundCheckSchedule
from orderguard.providers.base import ProviderError, RefundResult
from orderguard.services.clock import Clock, system_clock
from orderguard.services.providers import Providers
from orderguard.services.settling import locked
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.refund_check")
#: Appended to the worker's id: the owner of this duty's leases (never the janitor's).
LEASE_SUFFIX = "/refunds"


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the provider said about one refund: its view, ``None`` (no such refund), or
    the error that left it unknown."""

    refund_id: str
    found: RefundResult | None = None
    error: ProviderError | None = None


@dataclass
class RefundCheckRound:
    """What one round did."""

    #: Refunds looked up at their provider.
    checked: int = 0
    #: Of those, refunds that ended (succeeded or failed) by the lookup.
    settled: int = 0
    #: Lookups that got no answer (the refund's outcome stays unknown).
    unknown: int = 0
    #: Refunds whose schedule ran out in this round (the order flagged).
    escalated: int = 0


class RefundCheck:
    """Looks up due pending refunds on the orders it has leased."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        providers: Providers,
        *,
        schedule: RefundCheckSchedule | None = None,
        lease: timedelta = timedelta(seconds=60),
        check_time: timedelta = timedelta(seconds=25),
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._providers = providers
        self.schedule = schedule or RefundCheckSchedule()
        self._lease = lease
        self._check_time = check_time
        self._clock = clock

    async def run_once(
        self, *, owner: str, limit: int = 50, stop: asyncio.Event | None = None
    ) -> RefundCheckRound:
        """Lease the orders holding a due refund, look each refund up, settle, give back.

        Stops early (giving back what it did not get to) when ``stop`` is set or the lease
        is about to run out, so no order is worked on by two workers at once.
        """
        owner = f"{owner}{LEASE_SUFFIX}"
        now = self._clock()
        async with self._storage() as uow:
            due = await uow.leases.claim_refund_checks(
                now=now,
                first_due_before=now - self.schedule.first_wait,
                owner=owner,
                until=now + self._lease,
                limit=limit,
            )
            await uow.commit()
        report = RefundCheckRound()
        deadline = now + max(self._lease - self._check_time, self._lease / 2)
        for order_id in due:
            if (stop is not None and stop.is_set()) or self._clock() >= deadline:
                await self._release(order_id, owner)
                continue
            try:
                await self._check(order_id, owner, report)
            except Exception:  # one order's trouble never stops the round
                log.exception("refund check: %s failed; its refunds stay scheduled", order_id)
        return report

    async def _release(self, order_id: str, owner: str) -> None:
        async with self._storage() as uow:
            await uow.leases.release(order_id, owner)
            await uow.commit()

    async def _check(self, order_id: str, owner: str, report: RefundCheckRound) -> None:
        """Read the leased order, ask the provider about each due refund (outside any
        transaction), then apply the answers, reschedule and give the lease back in one."""
        try:
            async with self._storage() as uow:
                before = await uow.orders.get(order_id)
        except BaseException:
            await self._release(order_id, owner)
            raise
        now = self._clock()
        due = [] if before is None else [r for r in before.refunds if self._due(r, now)]
        lookups = [await self._ask(before, refund) for refund in due if before is not None]
        try:
            async with self._storage() as uow:
                order = await locked(uow, order_id)
                for lookup in lookups:
                    self._apply(order, lookup, report)
                await uow.orders.save(order)
                await uow.leases.release(order_id, owner)
                await uow.commit()
        except BaseException:
            await self._release(order_id, owner)
            raise

    def _due(self, refund: Refund, now: datetime) -> bool:
        if refund.state is not RefundState.PENDING:
            return False
        if refund.next_check_at is not None:
            return refund.next_check_at <= now
        return refund.created_at <= now - self.schedule.first_wait

    async def _ask(self, order: Order, refund: Refund) -> Lookup:
        """The provider's view of ``refund``, found the way it was sent."""
        attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
        if attempt.provider_ref is None:  # pragma: no cover - a refunded attempt was charged
            return Lookup(refund.id, error=ProviderError("the payment has no reference"))
        provider = self._providers.named(attempt.provider).provider
        try:
            found = await provider.retrieve_refund(
                attempt.provider_ref,
                idempotency_key=refund.provider_key,
                metadata={"refund_id": refund.id, "order_id": order.id},
                refund_ref=refund.provider_ref,
            )
        except ProviderError as exc:
            log.warning("refund check: %s at %s got no answer: %s", refund.id, provider.name, exc)
            return Lookup(refund.id, error=exc)
        return Lookup(refund.id, found=found)

    def _apply(self, order: Order, lookup: Lookup, report: RefundCheckRound) -> None:
        """Settle what the provider said (as its webhook would) and reschedule the rest."""
        refund = order.refund(lookup.refund_id)
        assert refund is not None  # refunds are never deleted
        if refund.state is not RefundState.PENDING:
            return  # settled meanwhile (a webhook, a repeated request)
        now = self._clock()
        report.checked += 1
        report.unknown += lookup.error is not None
        differs = lookup.found is not None and lookup.found.amount != refund.amount
        if lookup.found is not None and not differs:
            self._settle(order, refund, lookup.found, now)
            if refund.state is not RefundState.PENDING:
                report.settled += 1
                return
        refund.looked_up(now, next_at=self.schedule.next_at(checks=refund.checks + 1, now=now))
        if differs or self.schedule.exhausted(checks=refund.checks):
            report.escalated += self._escalate(order, refund, lookup, now)

    def _settle(self, order: Order, refund: Refund, found: RefundResult, now: datetime) -> None:
        """The provider's view applied to the record by the rule its webhook and the
        request's answer use (:func:`~orderguard.domain.refund.settle_refund`): a
        ``pending`` view only records the provider's refund id."""
        settle_refund(
            order,
            refund,
            refund_state_of(found.status),
            provider_ref=found.refund_ref,
            failure_reason=found.failure_reason,
            cause=Cause.JANITOR,
            at=now,
        )

    def _escalate(self, order: Order, refund: Refund, lookup: Lookup, now: datetime) -> bool:
        """Flag the order once for this refund: its lookups ran out with no final answer."""
        if any(refund.id in f.detail for f in order.flags if f.reason is _UNRESOLVED):
            return False
        if lookup.error is not None:
            last = f"the last lookup got no answer ({lookup.error})"
        elif lookup.found is not None and lookup.found.amount != refund.amount:
            last = (
                f"the provider reports {lookup.found.amount} {lookup.found.currency} "
                f"{lookup.found.status} for it: not applied, a person compares them"
            )
        elif lookup.found is None:
            last = (
                "the provider says it has no such refund: look it up there before refunding again"
            )
        else:
            last = "the provider still reports it pending"
        attempt = next(a for a in order.attempts if a.id == refund.attempt_id)
        order.flag(
            _UNRESOLVED,
            f"refund {refund.id} of {refund.amount} {refund.currency} at {attempt.provider} is "
            f"still pending after {refund.checks} lookups since "
            f"{refund.created_at:%Y-%m-%d %H:%M} UTC; {last}",
            cause=Cause.JANITOR,
            at=now,
        )
        return True


_UNRESOLVED = FlagReason.REFUND_UNRESOLVED
