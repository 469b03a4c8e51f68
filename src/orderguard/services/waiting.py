"""Orders that wait in ``received`` because no provider was available when they came in.

They are charged as soon as a provider's circuit lets a call through again. The oldest goes
first and alone: while every circuit is open it is the only order looked at, and when a
circuit is half open it is the trial call whose success closes it. Then the rest drain,
batch after batch until none is left waiting, at the provider's pace instead of one batch
per worker round: ``concurrency`` calls at the provider at once, while the next orders are
prepared and the answered ones settled.

The database work is done for several orders at a time, which is what lets one worker keep
up with the provider: ``concurrency`` orders are locked, re-checked and given their attempts
in one transaction, committed before any of them is sent (G2, G3); the answers that are in
when the previous settling commits are settled together, each order's state, timeline entries
and outbox events in the same transaction (G5). Safe to run from several processes: rows are
locked (another worker's are skipped, not waited for) and re-checked before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome
from orderguard.services.clock import Clock, system_clock
from orderguard.services.payments import Payments
from orderguard.services.settling import Answered, apply_answers
from orderguard.storage.ports import UnitOfWorkFactory

#: Waiting orders claimed from the database at a time, at most.
BATCH = 100
#: Charge calls one worker has at the provider at once, by default.
CONCURRENCY = 8
#: Waiting orders claimed in one transaction, per call allowed at the provider at once.
CLAIM_PER_CALL = 4
#: The most answers settled in one transaction.
SETTLE_AT_MOST = 64
#: The longest an answer waits for the next ones to be settled together, in seconds.
SETTLE_WAIT_S = 0.05
#: A provider's answer to an attempt, waiting to be applied to its order.
_Answer = tuple[PaymentAttempt, Outcome]


async def charge_waiting(
    storage: UnitOfWorkFactory,
    payments: Payments,
    *,
    clock: Clock = system_clock,
    limit: int = BATCH,
    concurrency: int = CONCURRENCY,
    stop: asyncio.Event | None = None,
) -> int:
    """Charge waiting orders until none is left, no provider takes a call, or ``stop`` is
    set; claim at most ``limit`` (and ``CLAIM_PER_CALL`` per call at once) in one
    transaction; return how many were sent."""
    started, _ = await _start(storage, payments, 1, clock)
    if not started:
        return 0  # nothing waits, or no provider is up: the oldest is left as it was
    (order, attempt), batch = started[0], min(limit, CLAIM_PER_CALL * concurrency)
    outcome = await payments.send(order, attempt)  # the trial: alone
    await _settle(storage, [(attempt, outcome)], clock)
    return 1 + await _drain(storage, payments, clock, max(batch, 1), max(concurrency, 1), stop)


async def _drain(
    storage: UnitOfWorkFactory,
    payments: Payments,
    clock: Clock,
    batch: int,
    concurrency: int,
    stop: asyncio.Event | None,
) -> int:
    """Charge waiting orders with at most ``concurrency`` calls at the provider at once,
    until none is left, no provider is up or ``stop`` is set; return how many were sent.

    Orders are claimed and started ``batch`` at a time (one transaction each), at most one
    batch ahead of the calls, so the provider is kept busy while the next orders are prepared;
    answers are settled by one task, together, while the calls go on. An error in the
    database stops the claiming; the calls already sent are settled before it is raised.
    """
    calling = asyncio.Semaphore(concurrency)
    # started and not yet answered: the batch at the provider and the one ready behind it
    unanswered = asyncio.Semaphore(2 * batch)
    answers: asyncio.Queue[_Answer | None] = asyncio.Queue()
    calls: set[asyncio.Task[None]] = set()
    settling = asyncio.create_task(
        _settle_answers(
            storage, answers, clock, at_least=4 * concurrency, calling=lambda: bool(calls)
        )
    )
    failures: list[BaseException] = []
    sent = 0

    async def call(order: Order, attempt: PaymentAttempt) -> None:
        try:
            async with calling:
                outcome = await payments.send(order, attempt)
        except Exception as exc:  # the attempt stays pending: the janitor asks the provider
            failures.append(exc)
        else:
            answers.put_nowait((attempt, outcome))
        finally:
            unanswered.release()

    try:
        try:
            while not (stop is not None and stop.is_set()):
                for _ in range(batch):
                    await unanswered.acquire()
                try:
                    started, provider_up = await _start(storage, payments, batch, clock)
                except BaseException:
                    for _ in range(batch):
                        unanswered.release()
                    raise
                for _ in range(batch - len(started)):
                    unanswered.release()
                for order, attempt in started:
                    task = asyncio.create_task(call(order, attempt))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                sent += len(started)
                if not started or not provider_up:
                    break  # none left (or other workers hold them), or every circuit opened
        finally:
            while calls:  # what was sent is settled, whatever stopped the claiming
                await asyncio.wait(set(calls))
            answers.put_nowait(None)
            failures.extend(await settling)
    except asyncio.CancelledError:  # cancelled again while finishing: leave nothing running
        settling.cancel()
        for task in calls:
            task.cancel()
        raise
    if failures:
        raise failures[0]
    return sent


async def _settle_answers(
    storage: UnitOfWorkFactory,
    answers: asyncio.Queue[_Answer | None],
    clock: Clock,
    *,
    at_least: int,
    calling: Callable[[], bool],
) -> list[BaseException]:
    """Settle answers as they come until ``None``, several in each transaction: those already
    in when the previous settling committed, and while ``calling`` says more are on their way,
    the next ones up to ``at_least`` (waiting ``SETTLE_WAIT_S`` at most for each). Return the
    errors met (an order whose settling failed keeps its attempt pending, and the janitor asks
    the provider)."""
    failures: list[BaseException] = []
    done = False
    while not done:
        group: list[_Answer] = []
        item = await answers.get()
        while item is not None:
            group.append(item)
            if len(group) >= SETTLE_AT_MOST:
                break
            if not answers.empty():
                item = answers.get_nowait()
                continue
            if len(group) >= at_least or not calling():
                break
            try:
                item = await asyncio.wait_for(answers.get(), timeout=SETTLE_WAIT_S)
            except TimeoutError:
                break
        done = item is None
        if group:
            failures += await _settle_group(storage, group, clock)
    return failures


async def _settle_group(
    storage: UnitOfWorkFactory, group: list[_Answer], clock: Clock
) -> list[BaseException]:
    """Settle ``group`` in one transaction; if that fails, each answer in one of its own, so
    one order's trouble never holds up the others'."""
    try:
        await _settle(storage, group, clock)
        return []
    except Exception as exc:
        if len(group) == 1:
            return [exc]
    failures: list[BaseException] = []
    for answer in group:
        try:
            await _settle(storage, [answer], clock)
        except Exception as exc:
            failures.append(exc)
    return failures


async def _start(
    storage: UnitOfWorkFactory, payments: Payments, limit: int, clock: Clock
) -> tuple[list[tuple[Order, PaymentAttempt]], bool]:
    """Claim up to ``limit`` waiting orders (locked; those other workers hold are skipped)
    and commit an attempt for each at an available provider, in one transaction, before any
    is sent. Return them, and ``False`` if no provider was up for one of them (that one and
    the rest are left as they were: nothing about them is saved)."""
    started: list[tuple[Order, PaymentAttempt]] = []
    provider_up = True
    async with storage() as uow:
        for order in await uow.orders.claim_waiting(limit):
            assert order.payment_method is not None  # claimed because it holds one
            attempt = payments.prepare(order, order.payment_method, cause=Cause.JANITOR, at=clock())
            if attempt is None:  # still no provider
                provider_up = False
                break
            started.append((order, attempt))
        if started:
            await uow.orders.save_many([order for order, _ in started])
            await uow.commit()
    return started, provider_up


async def _settle(storage: UnitOfWorkFactory, group: list[_Answer], clock: Clock) -> None:
    """Apply the provider's answers to their attempts, on the orders as they are now, in one
    transaction (each order by the rules every settling follows: ``settling.apply_answers``)."""
    async with storage() as uow:
        orders = await uow.orders.lock_many([attempt.order_id for attempt, _ in group])
        current = {order.id: order for order in orders}
        for attempt, outcome in group:
            order = current[attempt.order_id]  # orders are never deleted
            answer = Answered(attempt.id, outcome)
            apply_answers(order, [answer], cause=Cause.JANITOR, at=clock())
        await uow.orders.save_many(orders)
        await uow.commit()
