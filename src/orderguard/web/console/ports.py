"""What the console reads from parts built elsewhere: the outbox and reconciliation.

The console shows their queue pages and the resend action only once something
implementing these is plugged in with :func:`plug`; until then they are not in the
navigation and their routes answer 404. Nothing here is faked. What is plugged in is a
factory called with the application's wiring (:class:`ConsoleViews`, which
``create_app`` may only open when the application starts); a factory that cannot
read the wired storage raises ``LookupError``, and its pages are then not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from fastapi import FastAPI
from starlette.requests import Request

from orderguard.domain.delivery import Delivery
from orderguard.services.clock import Clock
from orderguard.web.ports import Wired


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A notification the outbox relay gave up delivering to one sink."""

    id: str
    order_id: str
    event_type: str
    sink: str
    attempts: int
    last_error: str
    failed_at: datetime


class Notifications(Protocol):
    """The outbox as the console sees it."""

    async def backlog(self) -> dict[str, int]:
        """Per configured sink, the events committed but not yet delivered there (nor given
        up on), whether the relay has picked them up or not."""
        ...

    async def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        """Deliveries given up on, newest first."""
        ...

    async def resend(self, dead_letter_id: str) -> DeadLetter:
        """Queue the dead letter for delivery again; raises ``LookupError`` when unknown."""
        ...

    async def deliveries_of(self, order_id: str) -> list[Delivery]:
        """Every event of the order at every sink, newest event first (the order page)."""
        ...


@dataclass(frozen=True, slots=True)
class ReconciliationException:
    """A settlement-report line that did not match an order (or matched it wrongly)."""

    id: str
    provider: str
    kind: str
    provider_ref: str
    #: Minor units of ``currency`` (``None`` when the exception has no amount).
    amount: int | None
    currency: str | None
    detail: str
    found_at: datetime
    order_id: str | None = None


class Reconciliation(Protocol):
    """Reconciliation results as the console sees them."""

    async def exceptions(self, *, limit: int) -> list[ReconciliationException]:
        """Unresolved exceptions, newest first."""
        ...


class ConsoleViews(Wired, Protocol):
    """What the views plugged in are built on: the storage, the settings, the clock."""

    @property
    def clock(self) -> Clock: ...


T = TypeVar("T")
#: Builds a view on the wired application.
NotificationsFactory = Callable[[ConsoleViews], Notifications]
ReconciliationFactory = Callable[[ConsoleViews], Reconciliation]


@dataclass
class Plugged:
    """The optional parts the console reads from; ``None`` while not wired."""

    notifications: NotificationsFactory | None = None
    reconciliation: ReconciliationFactory | None = None


def plug(
    app: FastAPI,
    *,
    notifications: NotificationsFactory | None = None,
    reconciliation: ReconciliationFactory | None = None,
) -> None:
    """Give ``app``'s console the outbox and reconciliation views (e.g. in ``create_app``)."""
    current = _plugged(app)
    if notifications is not None:
        current.notifications = notifications
    if reconciliation is not None:
        current.reconciliation = reconciliation


def notifications(request: Request) -> Notifications | None:
    """The outbox view, when one is plugged in (and can read the wired storage)."""
    return _built(_plugged(request.app).notifications, request)


def reconciliation(request: Request) -> Reconciliation | None:
    """The reconciliation view, when one is plugged in (and can read the wired storage)."""
    return _built(_plugged(request.app).reconciliation, request)


def _built(factory: Callable[[ConsoleViews], T] | None, request: Request) -> T | None:
    """What ``factory`` builds on the wired container; ``None`` when nothing is plugged in
    or the factory raises ``LookupError`` (it cannot read this storage)."""
    if factory is None:
        return None
    try:
        return factory(_views(request))
    except LookupError:
        return None


def _views(request: Request) -> ConsoleViews:
    found: ConsoleViews = request.app.state.container
    return found


def _plugged(app: FastAPI) -> Plugged:
    found: Plugged | None = getattr(app.state, "console_plugged", None)
    if found is None:
        found = Plugged()
        app.state.console_plugged = found
    return found
