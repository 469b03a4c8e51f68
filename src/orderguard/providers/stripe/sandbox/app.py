"""The sandbox as a Starlette app: Stripe's API subset, the 3-D Secure page, admin endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from orderguard.providers.stripe.sandbox import admin, api, pages, recording
from orderguard.providers.stripe.sandbox.service import Sandbox, SandboxConfig


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

    # Test-only: with ORDERGUARD_SANDBOX_CONTRACT_LOG set, /v1 answers are recorded.
    middleware = [Middleware(recording.RecordResponses)] if recording.log_path() else []
    return Starlette(
        routes=[*api.ROUTES, *pages.ROUTES, *admin.ROUTES],
        lifespan=lifespan,
        middleware=middleware,
    )
