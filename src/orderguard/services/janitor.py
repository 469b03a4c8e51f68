"""The janitor (G5): asks the provider again about orders whose payment is not settled,
on a schedule per state, and escalates to the review queue when the schedule runs out.

Orders are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so any number of workers
share the work, nothing is checked twice at once, and a dead worker's leases expire.

The database work is shared by several orders; the provider is asked about each order alone,
outside any transaction. A round claims due orders a few at a time (as many as it asks about
at once, at most one such batch ahead of the provider calls, so no order waits long between
being read and being asked about): one transaction leases them and reads them whole. The
answers are settled as they come in: those that arrived while the previous settling
committed go together, in one transaction that locks each of those orders, applies its
answers by the rules every settling follows (``settling.apply_answers``, on the order as it
is now), counts the check, schedules the next, writes the timeline and outbox rows of them
all in a few multi-row statements, and gives the leases back. A round of one order so costs
two transactions (the claim with its read, and the settle); on a busy round a check costs a
fraction of each (``bench/`` measures it). Should a settling of several orders fail, each is
settled again in a transaction of its own, so one order's trouble never costs the others
their answers; an order whose own settling fails stays scheduled and keeps its lease until
the lease runs out, so it is asked again after that, not again in the same round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain.events import Cause
from orderguard.domain.flags import LABELS, FlagReason
from orderguard.domain.order import Order
from orderguard.domain.schedule import RecheckSchedule
from orderguard.services.clock import Clock, system_clock
from orderguard.services.recheck import Recheck
from orderguard.services.settling import Answered, apply_answers
from orderguard.storage.ports import UnitOfWorkFactory

log = logging.getLogger("orderguard.janitor")
#: What is logged when an order's own settling fails (it keeps its lease until it expires).
_KEPT = "janitor: settling %s failed; it is asked again once its lease runs out"
#: The flag reason of an order whose schedule ran out.
STUCK = LABELS[FlagReason.PAYMENT_UNRESOLVED]
#: The most checks settled in one transaction.
SETTLE_AT_MOST = 64
#: The longest a check waits for the next ones (still under way) to be settled together,
#: in seconds; a settling never waits once ``concurrency`` checks are in or none is owed.
#: Waiting costs nothing but the wait: the checks go on meanwhile, and a lease is made to
#: outlast two checks (a minute by default), far more than this.
SETTLE_WAIT_S = 0.5


@dataclass
class JanitorRound:
    """What one round did."""

    checked: int = 0
    resolved: int = 0
    escalated: int = 0


@dataclass(frozen=True, slots=True)
class _Checked:
    """A leased order's check, done and waiting to be settled (its lease still held)."""

    #: The order as the claim read it.
    before: Order
    #: ``False``: given back unchecked (the round stopped, or its lease is running out).
    kept: bool = True
    #: The provider was asked (the schedule said the check was due): the check counts.
    asked: bool = False
    #: What the provider said.
    answers: Sequence[Answered] = ()
    #: The provider call broke: counted on the order, not in the round's report.
    broke: bool = False


class _Handover:
    """Checks done and waiting to be settled, and how many claimed orders still owe one."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Checked | None] = asyncio.Queue()
        #: Orders claimed whose check was not handed over yet.
        self.owed = 0

    def put(self, checked: _Checked) -> None:
        self.owed -= 1
        self._queue.put_nowait(checked)

    def close(self) -> None:
        """Nothing more comes: :meth:`batch` says so once the rest was taken."""
        self._queue.put_nowait(None)

    async def batch(self, *, at_least: int) -> tuple[list[_Checked], bool]:
        """The next checks to settle together, and whether the hand-over is closed: those
        in now (up to ``SETTLE_AT_MOST``, at least one), and while more are owed, the next
        ones up to ``at_least``, the first waiting ``SETTLE_WAIT_S`` at most for them."""
        batch: list[_Checked] = []
        item = await self._queue.get()
        loop = asyncio.get_running_loop()
        until = loop.time() + SETTLE_WAIT_S
        while item is not None:
            batch.append(item)
            if len(batch) >= SETTLE_AT_MOST:
                break
            if not self._queue.empty():
                item = self._queue.get_nowait()
                continue
            if len(batch) >= at_least or self.owed <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=until - loop.time())
            except TimeoutError:
                break
        return batch, item is None


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
        self._concurrency = max(concurrency, 1)
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
        """Lease up to ``limit`` due orders, recheck each, and give the leases back.

        Up to ``concurrency`` orders are checked at once. Stops early (giving back what it
        did not get to) when ``stop`` is set or an order's lease is about to run out, so no
        order is ever worked on by two workers at once. What was checked is settled before
        this returns, whatever stopped the round.
        """
        report = JanitorRound()
        done = _Handover()
        settling = asyncio.create_task(self._settle_as_done(done, owner, report))
        try:
            await self._check_due(owner, limit, stop, done)
        finally:
            done.close()
            await settling
        return report

    async def _check_due(
        self,
        owner: str,
        limit: int,
        stop: asyncio.Event | None,
        done: _Handover,
    ) -> None:
        """Claim due orders ``concurrency`` at a time, at most one batch ahead of the checks,
        and check each (its result handed over to ``done``) until ``limit`` were claimed, none is
        due or ``stop`` is set. Raises what stopped a check that was not an ``Exception``
        (cancelled), after every check ended."""
        slots = asyncio.Semaphore(self._concurrency)
        ahead = asyncio.Semaphore(2 * self._concurrency)  # claimed, not yet being checked
        checks: list[asyncio.Task[None]] = []
        claimed = 0
        try:
            while claimed < limit and not (stop is not None and stop.is_set()):
                wanted = min(self._concurrency, limit - claimed)
                for _ in range(wanted):
                    await ahead.acquire()
                try:
                    orders, deadline = await self._claim(owner, wanted)
                except BaseException:
                    for _ in range(wanted):
                        ahead.release()
                    raise
                for _ in range(wanted - len(orders)):
                    ahead.release()
                claimed += len(orders)
                done.owed += len(orders)
                checks += [
                    asyncio.create_task(self._check(order, deadline, slots, ahead, stop, done))
                    for order in orders
                ]
                if len(orders) < wanted:
                    break  # none left due (or other workers hold them)
        except asyncio.CancelledError:
            for task in checks:  # stopped from outside: the checks under way stop too
                task.cancel()
            raise
        finally:
            running = [task for task in checks if not task.done()]
            if running:  # what was claimed is checked (or given back) and handed over
                await asyncio.wait(running)
        for task in checks:
            if task.cancelled():
                raise asyncio.CancelledError
            if (failure := task.exception()) is not None:
                raise failure

    async def _claim(self, owner: str, limit: int) -> tuple[list[Order], datetime]:
        """Lease and read up to ``limit`` due orders in one transaction; return them and the
        time after which no check of theirs may start (it could outlive the lease)."""
        now = self._clock()
        async with self._storage() as uow:
            orders = await uow.orders.claim_due(
                self.schedule.watched,
                now=now,
                first_due_before=now - self.schedule.shortest_wait,
                owner=owner,
                until=now + self._lease,
                limit=limit,
            )
            await uow.commit()
        # one check: up to two provider calls
        return orders, now + max(self._lease - self._check_time, self._lease / 2)

    async def _check(
        self,
        order: Order,
        deadline: datetime,
        slots: asyncio.Semaphore,
        ahead: asyncio.Semaphore,
        stop: asyncio.Event | None,
        done: _Handover,
    ) -> None:
        """Ask the provider about the leased ``order`` (outside any transaction) if its check
        is due, and hand the result over to be settled; a broken or stopped call still counts
        (so the schedule runs out and escalates) and is handed over too."""
        async with slots:
            ahead.release()
            if (stop is not None and stop.is_set()) or self._clock() >= deadline:
                done.put(_Checked(order, kept=False))  # another worker may take it
                return
            if not self._due(order):
                done.put(_Checked(order))  # claimed early: only rescheduled
                return
            try:
                answers = await self._recheck.ask(order, cause=Cause.JANITOR)
            except Exception:  # one order's trouble never stops the round
                log.exception("janitor: checking %s failed; it stays scheduled", order.id)
                done.put(_Checked(order, asked=True, broke=True))
            except BaseException:
                done.put(_Checked(order, asked=True, broke=True))
                raise
            else:
                done.put(_Checked(order, asked=True, answers=answers))

    async def _settle_as_done(self, done: _Handover, owner: str, report: JanitorRound) -> None:
        """Settle checks as they are handed over until the hand-over closes, several in each
        transaction (:meth:`_Handover.batch`)."""
        finished = False
        while not finished:
            batch, finished = await done.batch(at_least=self._concurrency)
            if batch:
                await self._settle_batch(batch, owner, report)

    async def _settle_batch(self, batch: list[_Checked], owner: str, report: JanitorRound) -> None:
        """Settle ``batch`` in one transaction; if that fails, each check in one of its own,
        so one order's trouble never costs the others their answers.

        An order whose own settling fails keeps its lease until the lease runs out: no claim
        takes it before then, neither a later one of this round nor another worker's, so an
        order the database keeps refusing is asked about once per lease, not once per claim.
        It stays scheduled; the round after the lease asks again."""
        try:
            self._add(report, await self._settle(batch, owner))
            return
        except Exception:
            if len(batch) == 1:
                log.exception(_KEPT, batch[0].before.id)
                return
        for one in batch:
            try:
                self._add(report, await self._settle([one], owner))
            except Exception:
                log.exception(_KEPT, one.before.id)

    async def _settle(self, batch: list[_Checked], owner: str) -> JanitorRound:
        """Lock the orders of ``batch``, apply each one's answers, reschedule it and save them
        all, give every lease back, commit; return what the batch adds to the round."""
        tally = JanitorRound()
        kept = [one for one in batch if one.kept]
        async with self._storage() as uow:
            current = {o.id: o for o in await uow.orders.lock_many([c.before.id for c in kept])}
            now = self._clock()
            saved: list[Order] = []
            for one in kept:
                order = current.get(one.before.id)
                if order is None:
                    continue  # orders are never deleted
                was = order.state
                apply_answers(order, one.answers, cause=Cause.JANITOR, at=now)
                self._reschedule(order, one.before, checked=one.asked, report=tally)
                saved.append(order)
                if one.asked and not one.broke:
                    tally.checked += 1
                    tally.resolved += order.state is not was  # by this check's answers
            await uow.orders.save_many(saved)
            await uow.leases.release_many([one.before.id for one in batch], owner)
            await uow.commit()
        return tally

    @staticmethod
    def _add(report: JanitorRound, tally: JanitorRound) -> None:
        report.checked += tally.checked
        report.resolved += tally.resolved
        report.escalated += tally.escalated

    def _due(self, order: Order) -> bool:
        since = order.last_checked_at or order.updated_at
        return self.schedule.due(
            state=order.state, checks=order.checks, since=since, now=self._clock()
        )

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
