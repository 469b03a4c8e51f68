"""One way to change a stored order: lock it, change it through the aggregate, save, commit.

:func:`settle` applies what providers said about an order's attempts (``domain.settle``) in
one transaction. Intake, paying again, recheck, operations, expiry, waiting orders, the
janitor and webhook events all settle through it (waiting orders and the janitor through
:func:`apply_answers`, the same rules for a batch of orders locked together), so every
answer is applied the same way: on the order as it is now (locked), with its cause on the
timeline, named after who asked when someone did, and, when the caller answers an
idempotent request, the request completed with the order in the same transaction.
:func:`mutate` is the same skeleton for any other change made through the order's methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderguard.domain.errors import OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.order import Order
from orderguard.domain.settle import Outcome, apply_outcome
from orderguard.services.clock import Clock
from orderguard.services.idempotency import KeyedRequest, Renderer
from orderguard.storage.ports import FinalAnswer, UnitOfWork, UnitOfWorkFactory

#: More work for the settling transaction, after the answers are applied and before the
#: order is saved (e.g. a reschedule, in the same transaction).
Then = Callable[[UnitOfWork, Order], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Answered:
    """What a provider said about one of an order's payment attempts."""

    attempt_id: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Reply:
    """The idempotent request a settling answers: completed with the order as ``render``
    shows it, in the settling's transaction."""

    request: KeyedRequest
    render: Renderer


@dataclass(frozen=True, slots=True)
class Settled:
    """The order as saved, the answers applied to it, and the body the reply was completed
    with (if one was given)."""

    order: Order
    answered: tuple[Answered, ...]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    """The order as it now stands, and whether the change was saved."""

    order: Order
    #: ``False`` when the change found nothing to do (nothing was saved).
    saved: bool


#: The answers to apply, or how to find them on the locked order (e.g. the attempt a
#: webhook names, checked against the order as it is now).
Answers = Sequence[Answered] | Callable[[Order], Sequence[Answered]]


def apply_answers(order: Order, answers: Sequence[Answered], *, cause: Cause, at: datetime) -> None:
    """Apply each answer to its attempt of ``order``, through ``domain.settle``."""
    for answer in answers:
        attempt = next(a for a in order.attempts if a.id == answer.attempt_id)
        apply_outcome(order, attempt, answer.outcome, cause=cause, at=at)


async def settle(
    storage: UnitOfWorkFactory,
    order_id: str,
    answers: Answers,
    *,
    cause: Cause,
    clock: Clock,
    actor: str | None = None,
    reply: Reply | None = None,
    then: Then | None = None,
    known: Order | None = None,
) -> Settled:
    """Lock the order, apply ``answers``, name ``actor`` (who asked) on what they changed,
    run ``then``, save, complete ``reply``, commit. Raises :class:`OrderNotFound`.

    ``known``: the order as the caller stored it last (e.g. intake's, committed before the
    charge), handed over: when the stored order is still at its version, ``known`` is
    settled as it stands, without reading back what it holds (on PostgreSQL, without
    ``then``: in one statement, ``OrderRepository.save_alone``; elsewhere its row locked
    first); otherwise (a webhook or the janitor changed it meanwhile) it is read, locked,
    as usual.
    """
    handed = known if known is not None and known.id == order_id else None
    async with storage() as uow:
        if handed is not None and then is None and uow.orders.saves_alone(handed):
            settled = await _saved_alone(uow, handed, answers, cause, clock(), actor, reply)
            if settled is not None:
                return settled
        else:
            if handed is not None and await uow.orders.lock_current(handed):
                order = handed
            else:
                order = await locked(uow, order_id)
            answered = _apply(order, answers, cause, clock(), actor)
            if then is not None:
                await then(uow, order)
            await uow.orders.save(order)
            body = None
            if reply is not None:
                body = reply.render(order)
                await reply.request.complete(uow, order.id, body)
            await uow.commit()
            return Settled(order, answered, body)
    # ``known`` changed since it was stored (a webhook, the janitor): nothing was written;
    # the answers are applied to the order as it is stored now, read and locked
    return await settle(
        storage, order_id, answers, cause=cause, clock=clock, actor=actor, reply=reply
    )


def _apply(
    order: Order, answers: Answers, cause: Cause, at: datetime, actor: str | None
) -> tuple[Answered, ...]:
    """The answers (found on ``order`` when ``answers`` finds them), applied to it, named
    after ``actor``."""
    answered = tuple(answers(order) if callable(answers) else answers)
    apply_answers(order, answered, cause=cause, at=at)
    if actor is not None:
        order.attribute_to(actor)
    return answered


async def _saved_alone(
    uow: UnitOfWork,
    known: Order,
    answers: Answers,
    cause: Cause,
    at: datetime,
    actor: str | None,
    reply: Reply | None,
) -> Settled | None:
    """:func:`settle` of ``known`` in one statement (``OrderRepository.save_alone``): the
    answers applied, the order saved and the reply completed if ``known`` is still stored
    at its version; ``None`` (nothing stored, ``known`` to be dropped: it holds the answers)
    if it changed since."""
    answered = _apply(known, answers, cause, at, actor)
    body = final = None
    if reply is not None:
        body = reply.render(known)
        final = FinalAnswer(reply.request.scope, reply.request.key, 201, body)
    if not await uow.orders.save_alone(known, final):
        return None
    await uow.commit()
    return Settled(known, answered, body)


async def mutate(
    storage: UnitOfWorkFactory, order_id: str, change: Callable[[Order], bool | None]
) -> Changed:
    """Lock the order, ``change`` it through its methods, save, commit. ``change`` returning
    ``False`` means it found nothing to do: nothing is saved. Raises :class:`OrderNotFound`
    (and whatever ``change`` raises, saving nothing)."""
    async with storage() as uow:
        order = await locked(uow, order_id)
        saved = change(order) is not False
        if saved:
            await uow.orders.save(order)
            await uow.commit()
    return Changed(order, saved)


async def locked(uow: UnitOfWork, order_id: str) -> Order:
    """The order, locked until ``uow`` ends; raises :class:`OrderNotFound`."""
    order = await uow.orders.get(order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    return order
