"""The sandbox as a Starlette app: Stripe's API subset, the 3-D Secure page, admin endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from orderguard.providers.sandbox import admin, api, pages
from orderguard.providers.sandbox.service import Sandbox, SandboxConfig


def create_app(config: SandboxConfig) -> Starlette:
    """A sandbox app; its ledger opens at startup and ``app.state.sandbox`` holds its state."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox = Sandbox(config)
        app.state.sandbox = sandbox
        sandbox.webhooks.start()
        try:
            yield
        finally:
            await sandbox.webhooks.stop()
            sandbox.ledger.close()

    return Starlette(routes=[*api.ROUTES, *pages.ROUTES, *admin.ROUTES], lifespan=lifespan)
