"""Real things the outbox tests deliver to: an SMTP server (aiosmtpd) and an HTTP receiver
on loopback, plus orders that live through every event."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderguard.api.server import free_port, running_server
from orderguard.config import Settings
from orderguard.domain import ids
from orderguard.domain.customer import Address, Customer
from orderguard.domain.delivery import WebhookEndpoint, WebhookSecret
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order, OrderLine
from orderguard.domain.states import OrderState
from orderguard.outbox.merchant_webhooks import new_secret
from orderguard.outbox.relay import Relay
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage

_O = OrderState
#: A life through every emailed event but cancellation (and one that is not emailed).
FULL_LIFE = (
    _O.PAYMENT_PENDING,
    _O.ACTION_REQUIRED,
    _O.PAYMENT_UNKNOWN,
    _O.PAYMENT_FAILED,
    _O.PAYMENT_PENDING,
    _O.PAID,
    _O.REFUNDED,
)
CANCELLED_LIFE = (_O.CANCELLED,)


def shopper(locale: str) -> Customer:
    """A shopper with an address per locale."""
    address = Address("Rua Augusta 1", "Lisboa", "1100-048", "PT")
    name = "王芳" if locale == "zh-CN" else "Ana Silva"
    return Customer(f"{locale.lower()}-shopper@example.com", name, address)


async def live(
    storage: UnitOfWorkFactory,
    *,
    locale: str = "en",
    life: tuple[OrderState, ...] = FULL_LIFE,
    at: datetime | None = None,
    flag: bool = False,
) -> Order:
    """Place an order and move it through ``life``, one committed change at a time."""
    at = at or datetime.now(UTC)
    order = Order.place(
        currency="EUR",
        lines=[OrderLine("TEE-M", "T-shirt", 2, 1999)],
        customer=shopper(locale),
        at=at,
        locale=locale,
    )
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    for step, target in enumerate(life, start=1):
        async with storage() as uow:
            loaded = await uow.orders.get(order.id, for_update=True)
            assert loaded is not None
            loaded.move_to(target, cause=Cause.API, at=at + timedelta(milliseconds=step))
            if flag and step == 1:
                odd, later = FlagReason.OTHER, at + timedelta(milliseconds=step)
                loaded.flag(odd, "looks odd", cause=Cause.SWEEP, at=later)
            await uow.orders.save(loaded)
            await uow.commit()
            order = loaded
    return order


@dataclass
class Mailbox:
    """Messages a real SMTP server on loopback received."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """An aiosmtpd server on a free loopback port, collecting every message."""
    port = free_port()
    box = Mailbox("127.0.0.1", port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Receiver:
    """A merchant's webhook endpoint: answers 500 to the first ``fail_first`` requests,
    and hangs (past the sender's timeout) on the request numbered ``hang_on`` (1-based)."""

    fail_first: int = 0
    hang_on: int | None = None
    hang_s: float = 5.0
    #: Seconds each accepted request takes to answer.
    delay_s: float = 0.0
    calls: int = 0
    accepted: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        self.calls += 1
        number = self.calls
        body = await request.body()
        headers = dict(request.headers)
        self.seen.append((headers, body))
        if number == self.hang_on:
            await asyncio.sleep(self.hang_s)
            return Response(status_code=200)  # too late: the sender gave up
        if number <= self.fail_first:
            return Response("not today", status_code=500)
        await asyncio.sleep(self.delay_s)
        self.accepted.append((headers, body))
        return Response(status_code=204)


@asynccontextmanager
async def receiver(**options: Any) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` served by uvicorn on a free loopback port."""
    hook = Receiver(**options)
    app = Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    async with running_server(app) as base:
        hook.url = base + "/hook"
        yield hook


FAST = {
    "outbox_backoff_s": "0.02",
    "outbox_backoff_max_s": "0.1",
    "outbox_timeout_s": "0.5",
    "outbox_lease_s": "5",
}


@pytest.fixture(
    name="sql", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def sql_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    """Migrated SQL storage on each back end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    storage = await open_storage(url)
    try:
        yield storage
    finally:
        await storage.close()


def settings(**extra: str) -> Settings:
    """Settings with fast retries, plus ``extra`` (setting names, lower case)."""
    return Settings.load({f"ORDERGUARD_{k.upper()}": v for k, v in {**FAST, **extra}.items()})


async def add_endpoint(
    storage: UnitOfWorkFactory, url: str, *, allow_private: bool = True
) -> tuple[WebhookEndpoint, str]:
    """An endpoint with a fresh secret; private by default, as the receivers are on loopback."""
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(ids.new_id("wep"), url, now, allow_private=allow_private)
    secret = new_secret()
    async with storage() as uow:
        await uow.endpoints.add(
            endpoint, WebhookSecret(ids.new_id("whs"), endpoint.id, secret, now)
        )
        await uow.commit()
    return endpoint, secret


async def relay_until(relay: Relay, done: object, *, seconds: float = 20.0) -> None:
    """Run relay rounds until ``done()`` is true."""
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the relay did not finish in time"
        await relay.run_once(owner="relay-test")
        await asyncio.sleep(0.02)


async def committed_ids(storage: UnitOfWorkFactory, order_id: str) -> list[str]:
    async with storage.reader() as uow:
        return [e.id for e in await uow.orders.events(order_id)]
