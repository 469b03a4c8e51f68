"""The Stripe adapter's HTTP clients (the charge's own, :mod:`.connections`; the SDK's aiohttp
client for every other call) keep their connections alive, and a failure still says whether
the request may have left (issue 20).

The SDK's requests are unchanged (the sandbox parses them as before); only the clients that
send them changed. Connections are counted where they arrive (a relay in front of the
sandbox), not by the clients. What G3 needs of a failure stays: a refused connection sent
nothing (unavailable, safe to re-send with the same key), a connection lost after sending,
or in the middle of the answer, leaves the charge unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from orderguard.api.server import free_port
from orderguard.providers.base import (
    PaymentOutcome,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
)
from orderguard.providers.stripe import transport
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.conftest import charge_request
from tests.providers.harness import API_KEY, SECRET


@dataclass
class Relay:
    """A TCP relay in front of the sandbox that counts the connections it is given: the
    server's view of how many connections the provider's clients open."""

    target: tuple[str, int]
    port: int = 0
    opened: int = 0
    open_now: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.open_now += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.open_now -= 1


@pytest.fixture
async def relay(sandbox_url: str) -> AsyncIterator[Relay]:
    target = urlsplit(sandbox_url)
    counted = Relay((str(target.hostname), int(target.port or 80)))
    server = await asyncio.start_server(counted.handle, "127.0.0.1", 0)
    counted.port = server.sockets[0].getsockname()[1]
    async with server:
        yield counted


@pytest.fixture
async def relayed(relay: Relay) -> AsyncIterator[StripeProvider]:
    """The Stripe adapter talking to the sandbox through the counting relay."""
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{relay.port}"
    )
    yield provider
    await provider.aclose()


async def test_every_request_goes_over_one_kept_connection(
    relayed: StripeProvider, relay: Relay
) -> None:
    """Three charges over the charge's own connection, a read over the SDK's: two in all."""
    results = [await relayed.create_payment(charge_request()) for i in range(3)]
    assert [r.outcome for r in results] == [PaymentOutcome.SUCCEEDED] * 3
    assert relay.opened == 1
    again = await relayed.retrieve_payment(str(results[0].provider_ref))
    assert again.outcome is PaymentOutcome.SUCCEEDED
    await relayed.create_payment(charge_request())
    assert relay.opened == 2


async def test_concurrent_charges_keep_every_connection_alive(
    relayed: StripeProvider, relay: Relay
) -> None:
    """Two bursts of 30 charges in flight: the second opens nothing."""
    requests = [charge_request() for i in range(30)]
    results = await asyncio.gather(*(relayed.create_payment(r) for r in requests))
    assert {r.outcome for r in results} == {PaymentOutcome.SUCCEEDED}
    first = relay.opened
    assert 1 <= first <= 30
    requests = [charge_request() for i in range(30)]
    results = await asyncio.gather(*(relayed.create_payment(r) for r in requests))
    assert {r.outcome for r in results} == {PaymentOutcome.SUCCEEDED}
    assert relay.opened == first


async def test_a_refused_connection_is_unavailable_nothing_was_sent() -> None:
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.create_payment(charge_request())
    finally:
        await provider.aclose()


@pytest.fixture
async def swallower() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server that reads one request and closes the connection without answering."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await _whole_request(reader))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, received


async def test_a_connection_lost_after_sending_leaves_the_charge_unknown(
    swallower: tuple[int, list[bytes]],
) -> None:
    port, received = swallower
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{port}"
    )
    try:
        with pytest.raises(ProviderOutcomeUnknown):
            await provider.create_payment(charge_request(attempt_id="pay_lost"))
    finally:
        await provider.aclose()
    [request] = received  # the whole request, head and body
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/payment_intents HTTP/1.1")
    assert b"idempotency-key: pay-pay_lost" in head.lower()
    length = int(
        next(h for h in head.lower().split(b"\r\n") if h.startswith(b"content-length")).split(b":")[
            1
        ]
    )
    assert b"amount=2599" in body and len(body) == length


async def _whole_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request as it arrived: its head, then the body its length announces."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    sizes = [int(h.split(b":")[1]) for h in lines if h.startswith(b"content-length")]
    length = sizes[0] if sizes else 0
    return head + await reader.readexactly(length)


async def test_a_connection_lost_in_the_middle_of_the_answer_leaves_the_charge_unknown() -> None:
    """The head of an answer arrived, its body did not: the charge may have happened. The
    SDK reads the body outside its guard; the client reads it inside (one error, the SDK's)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _whole_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b'content-length: 500\r\n\r\n{"id": "pi_'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{port}"
    )
    try:
        async with server:
            with pytest.raises(ProviderOutcomeUnknown) as caught:
                await provider.create_payment(charge_request())
    finally:
        await provider.aclose()
    assert "APIConnectionError" in str(caught.value)


async def test_closing_the_provider_closes_its_connections(
    relayed: StripeProvider, relay: Relay
) -> None:
    result = await relayed.create_payment(charge_request())
    await relayed.retrieve_payment(str(result.provider_ref))
    assert relay.open_now == 2  # the charge's connection and the SDK's, kept
    session = relayed._http._opened
    assert session is not None and not session.closed
    await relayed.aclose()
    for _ in range(100):  # the relay sees both ends close
        if relay.open_now == 0:
            break
        await asyncio.sleep(0.01)
    assert relay.open_now == 0
    assert session.closed
    assert relayed._http._opened is None
    # A later request opens a new connection.
    assert (await relayed.create_payment(charge_request())).outcome is PaymentOutcome.SUCCEEDED
    assert relay.opened == 3


def test_the_environments_proxy_is_looked_up_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "sandbox.internal")
    known: dict[tuple[str, str], str | None] = {}
    proxy = transport.environment_proxy
    assert proxy("https://api.stripe.com/v1/payment_intents", known) == "http://proxy.internal:3128"
    assert proxy("https://sandbox.internal/v1/payment_intents", known) is None  # NO_PROXY
    assert proxy("http://127.0.0.1:8100/v1/refunds", known) is None  # no HTTP_PROXY
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")  # the environment read once
    assert proxy("https://api.stripe.com/v1/refunds", known) == "http://proxy.internal:3128"
    client = transport.AioHttpClient(timeout_s=1.0, connect_timeout_s=1.0)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    _, kwargs = client._get_request_args_kwargs("POST", "https://api.stripe.com/v1/x", {}, "a=1")
    assert kwargs["proxy"] == "http://proxy.internal:3128"
    _, direct = client._get_request_args_kwargs("POST", "https://sandbox.internal/v1/x", {}, "")
    assert "proxy" not in direct
