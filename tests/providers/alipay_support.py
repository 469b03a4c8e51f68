"""Fixtures for the Alipay tests: keys made once per session, a sandbox on a free port
with those keys in its data directory, the adapter pointed at it, and a notify receiver.

Import the fixtures into a test module by name (``from tests.providers.alipay_support
import ...``); the shared ``conftest.py`` stays Stripe's.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from orderguard.providers.alipay import keys
from orderguard.providers.alipay.adapter import AlipayProvider
from orderguard.providers.alipay.sandbox import config as sandbox_config
from orderguard.providers.alipay.sandbox.config import SandboxConfig
from orderguard.providers.alipay.sandbox.server import run_sandbox
from orderguard.providers.base import ChargeRequest
from orderguard.providers.serving import serve_in_thread

APP_ID = sandbox_config.APP_ID
SELLER_ID = sandbox_config.SELLER_ID


@dataclass(frozen=True)
class KeyPairs:
    """Alipay's (the sandbox's) key and the app's, made once."""

    alipay: rsa.RSAPrivateKey
    app: rsa.RSAPrivateKey

    def write(self, directory: Path) -> None:
        """Put them where the sandbox looks, so it does not make its own."""
        directory.mkdir(parents=True, exist_ok=True)
        for private, public, key in (
            (sandbox_config.ALIPAY_KEY_FILE, sandbox_config.ALIPAY_PUBLIC_FILE, self.alipay),
            (sandbox_config.APP_KEY_FILE, sandbox_config.APP_PUBLIC_FILE, self.app),
        ):
            (directory / private).write_text(keys.private_pem(key))
            (directory / public).write_text(keys.public_pem(key.public_key()))


_PAIRS: list[KeyPairs] = []


@pytest.fixture
def key_pairs() -> KeyPairs:
    if not _PAIRS:
        _PAIRS.append(KeyPairs(keys.new_private_key(), keys.new_private_key()))
    return _PAIRS[0]


@pytest.fixture
def sandbox_url(tmp_path: Path, key_pairs: KeyPairs) -> Iterator[str]:
    """A sandbox with the session's keys; notifications retried quickly."""
    data_dir = tmp_path / "alipay-sandbox"
    key_pairs.write(data_dir)
    config = SandboxConfig(data_dir=str(data_dir), retry_delays_s=(0.05, 0.1, 0.2, 0.4))
    with run_sandbox(config) as url:
        yield url


def make_provider(url: str, pairs: KeyPairs, **options: Any) -> AlipayProvider:
    options.setdefault("seller_id", SELLER_ID)
    # plain http to the loopback sandbox: no certificate store to load (it costs ~0.1 s)
    options.setdefault("transport", httpx.AsyncHTTPTransport(verify=False))
    return AlipayProvider(
        app_id=options.pop("app_id", APP_ID),
        app_private_key=pairs.app,
        alipay_public_key=options.pop("alipay_public_key", pairs.alipay.public_key()),
        gateway_url=f"{url}/gateway.do",
        timeout_s=options.pop("timeout_s", 5),
        **options,
    )


@pytest.fixture
async def provider(sandbox_url: str, key_pairs: KeyPairs) -> AsyncIterator[AlipayProvider]:
    adapter = make_provider(sandbox_url, key_pairs)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def admin(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulated shopper, the fault switches and the ledger."""
    async with httpx.AsyncClient(base_url=sandbox_url, verify=False) as client:
        yield client


def alipay_request(
    *, amount: int = 2599, method: str = "alipay_page", **fields: Any
) -> ChargeRequest:
    """A CNY request for a fresh attempt unless told otherwise."""
    attempt_id = fields.pop("attempt_id", f"att_{secrets.token_hex(6)}")
    return ChargeRequest(
        attempt_id=attempt_id,
        order_id=fields.pop("order_id", f"ord_{secrets.token_hex(6)}"),
        amount=amount,
        currency=fields.pop("currency", "CNY"),
        method=method,
        return_url=fields.pop("return_url", "https://shop.test/orders/return"),
        idempotency_key=fields.pop("idempotency_key", f"orderguard-{attempt_id}"),
        metadata=fields.pop("metadata", {}),
        expires_at=fields.pop("expires_at", None),
    )


async def ledger(admin: httpx.AsyncClient) -> dict[str, Any]:
    response = await admin.get("/ledger")
    response.raise_for_status()
    book: dict[str, Any] = response.json()
    return book


async def shopper(admin: httpx.AsyncClient, out_trade_no: str, *steps: str) -> None:
    """The shopper's steps at the cashier (``login``, ``pay``, ``abandon``)."""
    for step in steps:
        response = await admin.post(f"/admin/trades/{out_trade_no}/{step}")
        assert response.status_code == 200, response.text


async def open_cashier(url: str) -> httpx.Response:
    """The shopper's browser opens the signed cashier URL."""
    async with httpx.AsyncClient(verify=False) as browser:
        return await browser.get(url)


@dataclass
class NotifyReceiver:
    """The shop's notify_url: answers ``replies`` in turn (then ``success``), records bodies."""

    replies: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.bodies.append(await request.body())
            reply = self.replies.pop(0) if self.replies else "success"
            return PlainTextResponse(reply)

        return Starlette(routes=[Route("/notify", receive, methods=["POST"])])

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.bodies) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(self.bodies) >= count, f"{len(self.bodies)} of {count} notifications"


@pytest.fixture
def receiver() -> NotifyReceiver:
    return NotifyReceiver()


@pytest.fixture
def notify_url(receiver: NotifyReceiver) -> Iterator[str]:
    """Where the sandbox sends the notifications: :data:`receiver`."""
    with serve_in_thread(receiver.app()) as url:
        yield f"{url}/notify"


@pytest.fixture
async def notifying_provider(
    sandbox_url: str, key_pairs: KeyPairs, notify_url: str
) -> AsyncIterator[AlipayProvider]:
    """The adapter whose payments are notified to ``notify_url``."""
    adapter = make_provider(sandbox_url, key_pairs, notify_url=notify_url)
    yield adapter
    await adapter.aclose()
