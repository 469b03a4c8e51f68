"""What every route of the HTTP API may read from the wired application, and how it
finds it.

The API does not know who wires it: the composition root (``orderguard.bootstrap``) gives
:func:`~orderguard.api.app.create_app` a value with what the routes declare (its
``Container`` has it, checked by mypy where it is passed). Each route module declares the
narrow desk it calls (``OrderDesk`` in ``orders.py``, ``Probes`` in ``health.py``...);
:class:`~orderguard.api.app.ApiWiring` is all of them. This module names only what every
route shares, so the checks that every request passes (``doors``, ``auth``) import no
service.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from orderguard.config import Settings
from orderguard.storage.ports import UnitOfWorkFactory


class Wired(Protocol):
    """What every route may read: the settings and the storage."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> UnitOfWorkFactory: ...


def wired(request: Request) -> Wired:
    """The wired application the app serves (opened by its lifespan, or given), as every
    route sees it; a route module reads ``request.app.state.container`` as its own desk."""
    found: Wired = request.app.state.container
    return found
