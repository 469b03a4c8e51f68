"""An API client on a real database (SQLite and PostgreSQL); storage on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from orderguard.bootstrap import Container, build_app, wire
from orderguard.config import Settings
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import LOCAL_URL, open_storage


@pytest.fixture
async def pg_storage(pg_url: str) -> AsyncIterator[SqlStorage]:
    """Migrated SQL storage on a fresh PostgreSQL database, closed afterwards."""
    sql_storage = await open_storage(pg_url)
    try:
        yield sql_storage
    finally:
        await sql_storage.close()


@dataclass
class Api:
    """A client talking to the app in-process, the app's wiring and its fake provider."""

    client: httpx.AsyncClient
    container: Container
    provider: InMemoryProvider


def memory_providers(*names: str) -> Providers:
    """In-memory providers, each behind its own breaker, primary first."""
    return Providers(
        [
            ProviderSlot(InMemoryProvider(name=name), CircuitBreaker(failure_threshold=3))
            for name in names or ("memory",)
        ]
    )


def api_settings(**changes: object) -> Settings:
    """Settings for API tests."""
    values: dict[str, object] = {"public_url": "https://shop.example"}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    storage = await open_storage(url)
    providers = memory_providers()
    container = wire(api_settings(), storage, providers)
    app = build_app(container=container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        provider = providers.primary.provider
        assert isinstance(provider, InMemoryProvider)
        yield Api(client, container, provider)
    await storage.close()
