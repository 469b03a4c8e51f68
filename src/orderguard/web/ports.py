"""What the faces for people need from the wired application, and what they are told of
the payment providers.

The shopper's page and the console do not know who wires them: the composition root
(``orderguard.bootstrap``) serves them on a value with these attributes (its
``Container``, checked by mypy where it is passed) and gives :func:`orderguard.web.install`
an :class:`Offered`, built from the provider registry, which the faces never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from orderguard.config import Settings
from orderguard.services.clock import Clock
from orderguard.services.operations import Operations
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments
from orderguard.services.recheck import Recheck
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.web.console.credentials import Credentials


class Wired(Protocol):
    """What every page may read: the settings, the storage, and the providers (whether
    they move real money: the test-mode banner)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> UnitOfWorkFactory: ...

    @property
    def payments(self) -> Payments: ...


class ShopperPageDesk(Wired, Protocol):
    """The shopper's order page: pay again (paced per order), report a problem."""

    @property
    def pay_again(self) -> PayAgain: ...

    @property
    def shopper_pay_pace(self) -> Pace: ...


class ConsoleDesk(Wired, Protocol):
    """The support console: its queues read the clock; its actions recheck, refund and
    cancel."""

    @property
    def clock(self) -> Clock: ...

    @property
    def recheck(self) -> Recheck: ...

    @property
    def operations(self) -> Operations: ...


class WebWiring(ShopperPageDesk, ConsoleDesk, Protocol):
    """Everything the faces read: what ``serve`` must run them on."""


@dataclass(frozen=True, slots=True)
class Offered:
    """What the payment providers tell the faces, given at wiring."""

    #: The test payment methods the shopper's page offers in development.
    test_methods: tuple[str, ...] = ()
    #: What the console hides from a non-admin (each provider's credential shapes).
    credentials: Credentials = field(default_factory=Credentials)


def wiring(request: Request) -> WebWiring:
    """The wired application the app serves."""
    wired: WebWiring = request.app.state.container
    return wired


def offered(request: Request) -> Offered:
    """What :func:`orderguard.web.install` was given (nothing: no provider's test methods
    offered, only the generic credentials hidden)."""
    found: Offered = getattr(request.app.state, "web_offered", None) or Offered()
    return found
