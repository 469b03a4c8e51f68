"""The janitor (G5): asks the provider again about orders whose payment is not settled,
on a schedule per state, and escalates to the review queue when the schedule runs out.

Orders are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so any number of workers
share the work, nothing is checked twice at once, and a dead worker's leases expire.
A check costs three transactions: the round's claim (shared by the orders it leased), a
read, and one that settles what the provider said, reschedules and gives the lease back;
the provider is asked between them, outside any transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.flags import LABELS, FlagReason
from orderguard.domain.order import Order
from orderguard.domain.schedule import RecheckSchedule
from orderguard.services.clock import Clock, system_clock
from orderguard.services.recheck import Recheck
from orderguard.services.settling import Answered, Then, settle
from orderguard.storage.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("orderguard.janitor")
#: The flag reason of an order whose schedule ran out.
STUCK = LABELS[FlagReason.PAYMENT_UNRESOLVED]


@dataclass
class JanitorRound:
    """What one round did."""

    checked: int = 0
    resolved: int = 0
    escalated: int = 0


class Janitor:
    """Rechecks due orders it has leased."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        recheck: Recheck,
        *,
        schedule: RecheckSchedule,
        lease: timedelta = timedelta(seconds=60),
        concurrency: int = 8,
        check_time: timedelta = timedelta(seconds=25),
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._recheck = recheck
        self.schedule = schedule
        self._lease = lease
        self._concurrency = concurrency
        self._check_time = check_time
        if lease < 2 * check_time:
            log.warning(
                "the janitor's lease (%s) is shorter than twice a check (%s): checks may "
                "outlive their lease; raise ORDERGUARD_JANITOR_LEASE_S",
                lease,
                check_time,
            )
        self._clock = clock

    async def run_once(
        self, *, owner: str, limit: int = 50, stop: asyncio.Event | None = None
    ) -> JanitorRound:
        """Lease the due orders, recheck each, and give the leases back.

        Up to ``concurrency`` orders are checked at once. Stops early (giving back what it
        did not get to) when ``stop`` is set or the lease is about to run out, so no order
        is ever worked on by two workers at once.
        """
        now = self._clock()
        async with self._storage() as uow:
            due = await uow.leases.claim_due_orders(
                self.schedule.watched,
                now=now,
                first_due_before=now - self.schedule.shortest_wait,
                owner=owner,
                until=now + self._lease,
                limit=limit,
            )
            await uow.commit()
        report = JanitorRound()
        # start no check that could outlive the lease (one check: up to two provider calls)
        deadline = now + max(self._lease - self._check_time, self._lease / 2)
        slots = asyncio.Semaphore(self._concurrency)

        async def check(order_id: str) -> None:
            async with slots:
                if (stop is not None and stop.is_set()) or self._clock() >= deadline:
                    await self._release([order_id], owner)  # another worker may take it
                    return
                try:
                    await self._check(order_id, owner, report)
                except Exception:  # one order's trouble never stops the round
                    log.exception("janitor: checking %s failed; it stays scheduled", order_id)

        await asyncio.gather(*(check(order_id) for order_id in due))
        return report

    async def _release(self, order_ids: list[str], owner: str) -> None:
        async with self._storage() as uow:
            for order_id in order_ids:
                await uow.leases.release(order_id, owner)
            await uow.commit()

    async def _check(self, order_id: str, owner: str, report: JanitorRound) -> None:
        """Read the leased order, ask its provider (outside any transaction), then settle
        the answers, reschedule and give the lease back in one transaction."""
        try:
            async with self._storage() as uow:
                before = await uow.orders.get(order_id)
                if before is None or before.state not in self.schedule.watched:
                    await uow.leases.release(order_id, owner)  # it moved on since the claim
                    await uow.commit()
                    return
        except BaseException:
            await self._release([order_id], owner)
            raise
        due = self._due(before)
        answers: list[Answered] = []
        failure: BaseException | None = None
        if due:
            try:
                answers = await self._recheck.ask(before, cause=Cause.JANITOR)
            except BaseException as exc:  # failed or stopped, it still counts (so the
                failure = exc  # schedule runs out and escalates) and gives its lease back
        then = self._after_check(before, owner, checked=due, report=report)
        try:
            settled = await settle(
                self._storage, order_id, answers, cause=Cause.JANITOR, clock=self._clock, then=then
            )
        except BaseException:
            await self._release([order_id], owner)  # another worker may take it
            raise
        if failure is not None:
            raise failure
        if due:
            report.checked += 1
            report.resolved += settled.order.state is not before.state

    def _due(self, order: Order) -> bool:
        since = order.last_checked_at or order.updated_at
        return self.schedule.due(
            state=order.state, checks=order.checks, since=since, now=self._clock()
        )

    def _after_check(
        self, before: Order, owner: str, *, checked: bool, report: JanitorRound
    ) -> Then:
        """The check's bookkeeping, in the transaction that settles its answers."""

        async def reschedule_and_release(uow: UnitOfWork, order: Order) -> None:
            self._reschedule(order, before, checked=checked, report=report)
            await uow.leases.release(order.id, owner)

        return reschedule_and_release

    def _reschedule(
        self, order: Order, before: Order, *, checked: bool, report: JanitorRound
    ) -> None:
        """Count the check and set the next one; escalate when the schedule ran out."""
        if (
            order.state is not before.state
            or order.checks != before.checks
            or order.state not in self.schedule.waits
        ):
            return  # it moved on (its schedule restarted), or another hand was here
        now = self._clock()
        if checked:
            order.checked(now, next_at=self._next(order, order.checks + 1, now))
        else:  # claimed early: this state's first wait is longer than the shortest
            order.check_at(self._next(order, order.checks, order.last_checked_at or now))
        if checked and self._escalate(order):
            order.flag(
                FlagReason.PAYMENT_UNRESOLVED,
                f"still {order.state} after {order.checks} rechecks",
                cause=Cause.JANITOR,
                at=now,
            )
            report.escalated += 1

    def _escalate(self, order: Order) -> bool:
        """The schedule ran out and the order is not in the review queue for it yet."""
        exhausted = self.schedule.exhausted(state=order.state, checks=order.checks)
        return exhausted and order.open_flag(FlagReason.PAYMENT_UNRESOLVED) is None

    def _next(self, order: Order, checks: int, since: datetime) -> datetime:
        waits = self.schedule.waits[order.state]
        return since + waits[min(checks, len(waits) - 1)]
