"""Fixtures and helpers of the WeChat Pay tests: its sandbox on a loopback port (one
identity for the whole run: RSA keys take a moment to make), a notification receiver, the
adapter built by the plug-in, and the simulated shopper."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.providers.base import ChargeRequest
from orderguard.providers.serving import serve_in_thread
from orderguard.providers.wechatpay.adapter import WechatPayProvider
from orderguard.providers.wechatpay.lab import sandbox_account
from orderguard.providers.wechatpay.plugin import build
from orderguard.providers.wechatpay.sandbox.identity import Identity, load_identity
from orderguard.providers.wechatpay.sandbox.server import run_sandbox
from orderguard.providers.wechatpay.sandbox.service import SandboxConfig
from tests.providers.receiver import Receiver

__all__ = [
    "charge",
    "identity",
    "identity_dir",
    "provider",
    "receiver",
    "receiver_url",
    "wechat_sandbox",
]


def charge(method: str = "wechatpay_native", amount: int = 2599, **fields: Any) -> ChargeRequest:
    """A fresh attempt (its own out_trade_no) in CNY unless told otherwise."""
    attempt_id = fields.pop("attempt_id", f"att_{secrets.token_hex(8)}")
    return ChargeRequest(
        attempt_id=attempt_id,
        order_id=fields.pop("order_id", f"ord_{secrets.token_hex(8)}"),
        amount=amount,
        currency=fields.pop("currency", "CNY"),
        method=method,
        return_url="https://shop.test/return",
        idempotency_key=f"pay-{attempt_id}",
        metadata=fields.pop("metadata", {}),
        expires_at=fields.pop("expires_at", None),
    )


@pytest.fixture(scope="session")
def identity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wechatpay")
    load_identity(path)
    return path


@pytest.fixture
def identity(identity_dir: Path) -> Identity:
    return load_identity(identity_dir)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def receiver_url(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver.app()) as url:
        yield f"{url}/hooks"


@pytest.fixture
def wechat_sandbox(identity_dir: Path) -> Iterator[str]:
    """A fresh sandbox (no trades) with short notification retries; yields its URL."""
    config = SandboxConfig(identity_dir, retry_delays_s=(0.05, 0.1, 0.2))
    with run_sandbox(config) as url:
        yield url


@pytest.fixture
async def provider(
    identity_dir: Path, wechat_sandbox: str, receiver_url: str
) -> AsyncIterator[WechatPayProvider]:
    """The adapter the plug-in builds for the sandbox's account."""
    built = build(sandbox_account(identity_dir, wechat_sandbox, receiver_url), 1.0)
    assert isinstance(built, WechatPayProvider)
    yield built
    await built.aclose()


async def shopper(base_url: str, out_trade_no: str, action: str) -> httpx.Response:
    """The simulated shopper acts on a trade (scan, open, pay, fail, abandon)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.post(f"/sandbox/shopper/{out_trade_no}/{action}")


async def admin(base_url: str, **settings: Any) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        (await client.post("/sandbox/admin", json=settings)).raise_for_status()


async def ledger(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        found: dict[str, Any] = (await client.get("/ledger")).json()
        return found
