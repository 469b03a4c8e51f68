"""The Stripe adapter's HTTP client sends each request in one write, over kept-alive
connections, and a failure still says whether the request may have left (issue 20).

The SDK's requests are unchanged (the sandbox parses them as before); only how their bytes
leave changes. What G3 needs of a failure stays: a refused connection sent nothing
(unavailable, safe to re-send with the same key), a connection lost after sending leaves
the charge unknown.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
)
from orderguard.providers.stripe import transport
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.conftest import charge_request
from tests.providers.harness import API_KEY, SECRET


def _streams(provider: StripeProvider) -> list[transport.CoalescingStream]:
    """The connections the provider's pool holds."""
    client = provider._http._client_async  # type: ignore[attr-defined]
    pool = client._transport._pool
    streams = []
    for conn in pool.connections:
        stream = getattr(getattr(conn, "_connection", None), "_network_stream", None)
        assert isinstance(stream, transport.CoalescingStream), stream
        streams.append(stream)
    return streams


async def test_every_request_leaves_in_one_send_on_a_kept_connection(
    stripe_provider: StripeProvider,
) -> None:
    results = [await stripe_provider.create_payment(charge_request()) for i in range(3)]
    assert [r.outcome for r in results] == [PaymentOutcome.SUCCEEDED] * 3
    again = await stripe_provider.retrieve_payment(str(results[0].provider_ref))
    assert again.outcome is PaymentOutcome.SUCCEEDED
    [stream] = _streams(stripe_provider)  # one connection, kept alive
    assert stream.sends == 4  # head and body together, once per request


async def test_concurrent_charges_keep_every_connection_alive(
    stripe_provider: StripeProvider,
) -> None:
    """More charges in flight than httpx's default 20 idle connections: none is closed."""
    requests = [charge_request() for i in range(30)]
    results = await asyncio.gather(*(stripe_provider.create_payment(r) for r in requests))
    assert {r.outcome for r in results} == {PaymentOutcome.SUCCEEDED}
    streams = _streams(stripe_provider)
    assert len(streams) > 20  # every connection opened for the burst is still there
    assert sum(s.sends for s in streams) == 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_unavailable_nothing_was_sent() -> None:
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{_free_port()}"
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
        received.append(await reader.read(65536))
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


def test_a_client_whose_transport_is_not_httpx_default_is_left_alone() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert transport.coalesce(client) is False
    assert transport.coalesce(transport.async_client()) is True


async def test_an_idle_connection_the_server_closed_is_seen_as_readable() -> None:
    """httpcore retires an idle connection whose socket has input pending (the server's end
    of stream); the stream answers that from its own poll of the socket."""
    accepted: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = transport.CoalescingBackend(httpcore.AnyIOBackend())
    stream = await backend.connect_tcp("127.0.0.1", port)
    try:
        assert isinstance(stream, transport.CoalescingStream)
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
        assert stream.get_extra_info("is_readable") is False  # open, nothing pending
        accepted[0].close()  # the server ends the connection
        for _ in range(100):
            if stream.get_extra_info("is_readable"):
                break
            await asyncio.sleep(0.01)
        assert stream.get_extra_info("is_readable") is True
        assert stream.get_extra_info("socket") is not None
    finally:
        await stream.aclose()
        server.close()
        await server.wait_closed()
    assert stream.get_extra_info("is_readable") is True  # closed here: no descriptor
