"""Fixtures for the provider tests: sandboxes on free ports, harnesses, request builders."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from orderguard.providers.base import ChargeRequest
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import SandboxConfig, run_sandbox
from tests.providers.harness import API_KEY, SECRET, FakeClock, MemoryHarness, SandboxHarness

StartSandbox = Callable[..., AbstractContextManager[str]]


def charge_request(
    *, order_id: str | None = None, method: str = "pm_card_visa", amount: int = 2599, **fields: Any
) -> ChargeRequest:
    """A request for a fresh attempt (its own idempotency key) unless told otherwise."""
    attempt_id = fields.pop("attempt_id", f"att_{secrets.token_hex(6)}")
    order = order_id or f"ord_{secrets.token_hex(6)}"
    return ChargeRequest(
        attempt_id=attempt_id,
        order_id=order,
        amount=amount,
        currency=fields.pop("currency", "EUR"),
        method=method,
        return_url=fields.pop("return_url", "https://shop.test/orders/return"),
        idempotency_key=fields.pop("idempotency_key", f"pay-{attempt_id}"),
        metadata=fields.pop("metadata", {"items": "2", "country": "DE"}),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_sandbox(tmp_path: Path, clock: FakeClock) -> StartSandbox:
    """Start a sandbox (a context manager yielding its URL); ledger in ``tmp_path``."""

    def start(**options: Any) -> AbstractContextManager[str]:
        options.setdefault("db_path", str(tmp_path / "sandbox.db"))
        options.setdefault("webhook_secret", SECRET)
        options.setdefault("clock", clock)
        return run_sandbox(SandboxConfig(**options))

    return start


@pytest.fixture
def sandbox_url(start_sandbox: StartSandbox) -> Iterator[str]:
    with start_sandbox() as url:
        yield url


@pytest.fixture
async def stripe_provider(sandbox_url: str) -> AsyncIterator[StripeProvider]:
    """The Stripe adapter pointed at a fault-free sandbox, with a short read timeout."""
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=sandbox_url, timeout_s=0.5
    )
    yield provider
    await provider.aclose()


@pytest.fixture(params=["sandbox", "memory"])
async def harness(
    request: pytest.FixtureRequest, start_sandbox: StartSandbox, clock: FakeClock
) -> AsyncIterator[SandboxHarness | MemoryHarness]:
    """Each provider implementation in turn, behind the same harness interface."""
    if request.param == "memory":
        memory = MemoryHarness(clock)
        yield memory
        await memory.aclose()
        return
    with start_sandbox() as url:
        sandbox = SandboxHarness(url, clock)
        yield sandbox
        await sandbox.aclose()
