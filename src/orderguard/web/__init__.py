"""Faces for people: the shopper's order page and the support console (server-rendered)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from orderguard.web.ports import Offered
from orderguard.web.templating import STATIC_DIR


def install(app: FastAPI, offered: Offered | None = None) -> None:
    """Add the shopper's page, the console and their static files to ``app``, told what
    the payment providers offer (their test methods, their credentials' shapes)."""
    from orderguard.web import shopper_page
    from orderguard.web.console import routes as console

    app.state.web_offered = offered or Offered()
    app.include_router(shopper_page.router)
    app.include_router(console.router)
    console.install_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
