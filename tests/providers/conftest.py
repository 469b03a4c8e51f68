"""Fixtures for the provider tests: sandboxes on free ports, harnesses, request builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import SandboxConfig, run_sandbox
from tests.providers.alipay_harness import AlipayLab, alipay_harness, alipay_lab
from tests.providers.harness import (
    API_KEY,
    SECRET,
    FakeClock,
    Harness,
    MemoryHarness,
    SandboxHarness,
)
from tests.providers.harness import charge_request as charge_request
from tests.providers.wechatpay_harness import WechatPayLab, wechatpay_harness, wechatpay_lab

StartSandbox = Callable[..., AbstractContextManager[str]]


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


@pytest.fixture(scope="module")
def contract_alipay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlipayLab]:
    """The Alipay sandbox of the contract suite (keys take a moment: made once). Module
    scope: it stops before another module's tests run (a running server's log filter is
    on uvicorn's loggers, which ``test_sandbox_logging.py`` checks are left clean)."""
    with alipay_lab(tmp_path_factory.mktemp("contract-alipay")) as lab:
        yield lab


@pytest.fixture(scope="module")
def contract_wechatpay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatPayLab]:
    """The WeChat Pay sandbox of the contract suite (its identity made once)."""
    with wechatpay_lab(tmp_path_factory.mktemp("contract-wechatpay")) as lab:
        yield lab


@pytest.fixture(params=["sandbox", "memory", "alipay", "wechatpay"])
async def harness(
    request: pytest.FixtureRequest, start_sandbox: StartSandbox, clock: FakeClock
) -> AsyncIterator[Harness]:
    """Each provider implementation in turn, behind the same harness interface: Stripe's
    sandbox and the in-memory fake (cards), the Alipay and WeChat Pay adapters against
    their sandboxes (wallets; each started once, its tests' trades their own)."""
    if request.param in ("alipay", "wechatpay"):
        lab = request.getfixturevalue(f"contract_{request.param}")
        wallet = alipay_harness(lab) if request.param == "alipay" else wechatpay_harness(lab)
        yield wallet
        await wallet.aclose()
        return
    if request.param == "memory":
        memory = MemoryHarness(clock)
        yield memory
        await memory.aclose()
        return
    with start_sandbox() as url:
        sandbox = SandboxHarness(url, clock)
        yield sandbox
        await sandbox.aclose()
