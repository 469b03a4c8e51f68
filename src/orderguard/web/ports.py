"""What every page for people may read from the wired application, and what the faces
are told of the payment providers.

The shopper's page and the console do not know who wires them: the composition root
(``orderguard.bootstrap``) serves them on a value with what they declare (its
``Container`` has it, checked by mypy there) and gives :func:`orderguard.web.install` an
:class:`Offered` built from the provider registry, which the faces never read. Each face
declares the narrow desk it calls (``ShopperPageDesk`` in ``shopper_page.py``,
``ConsoleDesk`` in ``console/routes.py``); :class:`orderguard.web.WebWiring` is both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from orderguard.config import Settings
from orderguard.domain.order import Order
from orderguard.services.providers import Providers
from orderguard.services.shopper_action import ShopperAction
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.web.console.credentials import Credentials


class Payments(Protocol):
    """The payments, as far as the pages go: the providers (whether they move real
    money, how their breakers stand) and what the shopper must do outside the shop."""

    @property
    def providers(self) -> Providers: ...

    def shopper_action(self, order: Order) -> ShopperAction | None: ...


class Wired(Protocol):
    """What every page may read: the settings, the storage and the providers."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> UnitOfWorkFactory: ...

    @property
    def payments(self) -> Payments: ...


@dataclass(frozen=True, slots=True)
class Offered:
    """What the payment providers tell the faces, given at wiring."""

    #: The test payment methods the shopper's page offers in development.
    test_methods: tuple[str, ...] = ()
    #: What the console hides from a non-admin (with each provider's credential shapes).
    credentials: Credentials = field(default_factory=Credentials)


def wired(request: Request) -> Wired:
    """The wired application the app serves, as every page sees it; a face reads
    ``request.app.state.container`` as its own desk."""
    found: Wired = request.app.state.container
    return found


def offered(request: Request) -> Offered:
    """What :func:`orderguard.web.install` was given (nothing: no provider's test methods
    offered, only the credentials every provider shares hidden)."""
    found: Offered = getattr(request.app.state, "web_offered", None) or Offered()
    return found
