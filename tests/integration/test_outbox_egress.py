"""Merchant webhooks go only to public addresses, checked again at each delivery (issue 15).

Names are resolved by a resolver injected at wiring (no DNS, no internet): it answers
what a hostile DNS server would, and the real receiver on loopback shows what arrived.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from orderguard.domain import ids
from orderguard.domain.delivery import Outcome
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.outbox.configured import build_relay
from orderguard.outbox.egress import check_endpoint_url
from orderguard.outbox.merchant_webhooks import WebhookSink
from orderguard.outbox.sinks import DeliveryFailed
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.outbox_kit import (  # noqa: F401 (sql is a fixture)
    add_endpoint,
    committed_ids,
    live,
    receiver,
    relay_until,
    settings,
    sql_storage,
)

#: A merchant's host name that no real DNS knows.
MERCHANT = "hooks.merchant.test"
#: A public address (it is never connected to: the resolver only claims it).
PUBLIC = "93.184.216.34"


class Rebinding:
    """A DNS server that answers ``first`` the first time, then ``later`` every time."""

    def __init__(self, first: list[str], later: list[str]) -> None:
        self.first, self.later, self.asked = first, later, 0

    async def __call__(self, host: str, port: int) -> list[str]:
        assert host == MERCHANT
        self.asked += 1
        return self.first if self.asked == 1 else self.later


def merchant_url(receiver_url: str) -> str:
    """The receiver's URL under the merchant's name (same port and path)."""
    parts = urlsplit(receiver_url)
    return f"http://{MERCHANT}:{parts.port}{parts.path}"


async def errors_of(sql: SqlStorage, order_id: str) -> list[str]:
    support = OutboxSupport(sql)
    events = await committed_ids(sql, order_id)
    attempts = [a for e in events for a in (await support.event(e)).attempts]
    return [a.error or "" for a in attempts if a.outcome is not Outcome.DELIVERED]


async def test_a_name_that_resolves_to_loopback_at_delivery_time_is_refused(
    sql: SqlStorage,
) -> None:
    order = await live(sql, life=())
    dns = Rebinding([PUBLIC], ["127.0.0.1"])
    async with receiver() as hook:
        url = merchant_url(hook.url)
        await check_endpoint_url(url, allow_private=False, resolver=dns)  # public when added
        await add_endpoint(sql, url, allow_private=False)
        relay = build_relay(settings(), sql, resolver=dns)
        try:
            for _ in range(3):
                await relay.run_once(owner="relay-test")
        finally:
            await relay.aclose()
    assert hook.calls == 0
    errors = await errors_of(sql, order.id)
    assert errors
    assert all("resolves to 127.0.0.1 (loopback)" in e for e in errors), errors
    assert all(f"refused to send to {url}:" in e for e in errors), errors


async def test_one_private_address_among_public_ones_is_enough_to_refuse(
    sql: SqlStorage,
) -> None:
    order = await live(sql, life=())
    dns = Rebinding([PUBLIC, "169.254.169.254"], [PUBLIC, "169.254.169.254"])
    async with receiver() as hook:
        url = merchant_url(hook.url)
        await add_endpoint(sql, url, allow_private=False)
        relay = build_relay(settings(), sql, resolver=dns)
        try:
            await relay.run_once(owner="relay-test")
        finally:
            await relay.aclose()
    assert hook.calls == 0
    assert "169.254.169.254 (cloud metadata)" in (await errors_of(sql, order.id))[0]


async def test_an_allow_private_endpoint_reaches_the_checked_address_and_its_answer_is_not_kept(
    sql: SqlStorage,
) -> None:
    order = await live(sql, life=())
    dns = Rebinding(["127.0.0.1"], ["127.0.0.1"])
    async with receiver(fail_first=1) as hook:
        url = merchant_url(hook.url)
        endpoint, _ = await add_endpoint(sql, url, allow_private=True)
        relay = build_relay(settings(), sql, resolver=dns)
        try:
            await relay_until(relay, lambda: len(hook.accepted) == 1)
        finally:
            await relay.aclose()
    headers, _ = hook.accepted[0]
    assert headers["host"] == f"{MERCHANT}:{urlsplit(hook.url).port}"  # the name, not the IP
    [failed] = await errors_of(sql, order.id)
    assert "answered 500" in failed
    assert "not today" not in failed  # what the receiver said is not stored
    async with sql.reader() as uow:
        [stored] = await uow.endpoints.all()
    assert (stored.url, stored.allow_private) == (url, True)
    assert endpoint.id == stored.id


class TlsReceiver:
    """An HTTPS endpoint on loopback whose certificate names only :data:`MERCHANT`."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        fields = dict(
            line.lower().split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line
        )
        await reader.readexactly(int(fields.get("content-length", "0")))
        self.hosts.append(fields["host"])
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


def certificate_for(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) valid for ``name`` only."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = "req -x509 -newkey rsa:2048 -nodes -days 1".split()
    files = ["-keyout", str(key), "-out", str(cert)]
    names = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    subprocess.run(
        ["openssl", *request, *files, *names],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_over_https_the_checked_address_is_verified_against_the_endpoints_name(
    sql: SqlStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate_for(MERCHANT, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the relay's client trusts only it
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    hook = TlsReceiver()
    server = await asyncio.start_server(hook.answer, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    order = await live(sql, life=())

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    good, _ = await add_endpoint(sql, f"https://{MERCHANT}:{port}/hook")
    stranger, _ = await add_endpoint(sql, f"https://other.merchant.test:{port}/hook")
    relay = build_relay(settings(), sql, resolver=loopback)
    try:
        await relay.run_once(owner="relay-test")
    finally:
        await relay.aclose()
        server.close()
        await server.wait_closed()
    assert hook.hosts == [f"{MERCHANT}:{port}"]
    deliveries = {d.sink: d for d in await OutboxSupport(sql).deliveries_of_order(order.id)}
    assert deliveries[good.sink].state == "delivered"
    assert "CERTIFICATE_VERIFY_FAILED" in (deliveries[stranger.sink].last_error or "")


class FloodingEndpoint:
    """An endpoint on loopback that answers 500 with a body of ``size`` bytes, written in
    chunks for as long as the sender reads; ``written`` counts what got through."""

    def __init__(self, size: int) -> None:
        self.size, self.written, self.finished = size, 0, False

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            int(line.split(":", 1)[1]) for line in head.split("\r\n") if ":" in line
            and line.lower().startswith("content-length")
        )  # fmt: skip
        await reader.readexactly(length)
        writer.write(f"HTTP/1.1 500 Oops\r\ncontent-length: {self.size}\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            while self.written < self.size:
                writer.write(chunk)
                await writer.drain()
                self.written += len(chunk)
            self.finished = True
        except (ConnectionError, OSError):
            pass  # the sender hung up: it read what it needed
        finally:
            writer.close()


async def test_a_huge_answer_is_never_read_whole(sql: SqlStorage) -> None:
    order = await live(sql, life=())
    flood = FloodingEndpoint(size=256 * 1024 * 1024)
    server = await asyncio.start_server(flood.answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await add_endpoint(sql, f"http://127.0.0.1:{port}/hook", allow_private=True)
        relay = build_relay(settings(outbox_timeout_s="20"), sql)
        try:
            await relay.run_once(owner="relay-test")
        finally:
            await relay.aclose()
    finally:
        server.close()
    assert not flood.finished  # the relay stopped reading long before 256 MiB
    [failed] = await errors_of(sql, order.id)
    assert "answered 500" in failed and len(failed) < 500


async def test_a_public_endpoints_failed_answer_keeps_only_its_first_characters(
    sql: SqlStorage,
) -> None:
    pulled: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for number in range(100_000):
            pulled.append(number)
            yield "é".encode() * 1000

    def flooding(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=endless())

    endpoint, _ = await add_endpoint(sql, f"http://{MERCHANT}/hook", allow_private=False)
    client = httpx.AsyncClient(transport=httpx.MockTransport(flooding))
    sink = WebhookSink(
        endpoint,
        storage=sql,
        client=client,
        clock=lambda: datetime.now(UTC),
        resolver=Rebinding([PUBLIC], [PUBLIC]),
    )
    event = OutboxEvent(ids.new_id("evt"), "ord_1", EventType.PAID, datetime.now(UTC))
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await sink.deliver(event, None)
    finally:
        await client.aclose()
    assert str(failed.value) == f"http://{MERCHANT}/hook answered 502: " + "é" * 200
    assert len(pulled) <= 2  # two 2 kB chunks at most, of 100 000 offered
