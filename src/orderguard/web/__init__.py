"""Faces for people: the shopper's order page and the support console (server-rendered)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from orderguard.web import shopper_page
from orderguard.web.console import routes as console
from orderguard.web.console.credentials import Credentials
from orderguard.web.console.routes import ConsoleDesk
from orderguard.web.ports import Offered
from orderguard.web.shopper_page import ShopperPageDesk
from orderguard.web.templating import STATIC_DIR

__all__ = ["Offered", "WebWiring", "install", "offer"]


class WebWiring(ShopperPageDesk, ConsoleDesk, Protocol):
    """Everything the faces read (each declares its own desk): what ``serve`` runs them
    on."""


def offer(
    test_methods: Iterable[str], signature_headers: Iterable[str], credential_shapes: str
) -> Offered:
    """What the payment providers offer the faces: their test methods (the shopper's page
    in development), the headers carrying their webhook signatures and one regular
    expression of their credentials' shapes (both hidden in the console)."""
    return Offered(tuple(test_methods), Credentials(signature_headers, credential_shapes))


def install(app: FastAPI, offered: Offered | None = None) -> None:
    """Add the shopper's page, the console and their static files to ``app``, told what
    the payment providers offer (their test methods, their credentials' shapes)."""
    app.state.web_offered = offered or Offered()
    app.include_router(shopper_page.router)
    app.include_router(console.router)
    console.install_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
