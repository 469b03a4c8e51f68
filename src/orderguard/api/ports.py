"""What the HTTP API needs from the wired application, one desk per kind of route.

The API does not know who wires it: the composition root (``orderguard.bootstrap``) gives
:func:`~orderguard.api.app.create_app` a value that has these attributes (its
``Container`` does, checked by mypy where it is passed) and, apart, what reads the
database's gauges for ``/metrics``. Each route module reads only the desk it declares.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from orderguard.config import Settings
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.intake import Intake
from orderguard.services.operations import Operations
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments
from orderguard.services.recheck import Recheck
from orderguard.services.shopper_return import ShopperReturn
from orderguard.storage.ports import UnitOfWorkFactory


class Wired(Protocol):
    """What every route may read: the settings and the storage."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> UnitOfWorkFactory: ...


class OrderDesk(Wired, Protocol):
    """The orders routes: place, pay again, recheck, read."""

    @property
    def intake(self) -> Intake: ...

    @property
    def pay_again(self) -> PayAgain: ...

    @property
    def recheck(self) -> Recheck: ...


class OperationsDesk(OrderDesk, Protocol):
    """The operator actions: refund and cancel (answering with the order's detail)."""

    @property
    def operations(self) -> Operations: ...


class ShopperDesk(Wired, Protocol):
    """The shopper's return from authentication."""

    @property
    def shopper_return(self) -> ShopperReturn: ...


class WebhookDesk(Protocol):
    """The webhook inbox, and the providers whose replies answer their events."""

    @property
    def inbox(self) -> WebhookInbox: ...

    @property
    def payments(self) -> Payments: ...


class Probes(Wired, Protocol):
    """``/readyz`` and ``/metrics``: the storage's statistics and the providers' breakers."""

    @property
    def payments(self) -> Payments: ...


class ApiWiring(OperationsDesk, ShopperDesk, WebhookDesk, Probes, Protocol):
    """Everything the API's routes read: what :func:`~orderguard.api.app.create_app` takes."""


def wiring(request: Request) -> ApiWiring:
    """The wired application the app serves (opened by its lifespan or given)."""
    wired: ApiWiring = request.app.state.container
    return wired
