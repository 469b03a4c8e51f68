"""The HTTP client under the Stripe SDK: httpx's, with each request sent in one write.

httpcore writes a request's head and its body separately: two socket sends, each a trip
through the event loop (anyio's ``send`` yields after writing), on the hot path of every paid
order. :class:`CoalescingBackend` holds what is written on a connection until the client
next reads from it (or the held bytes pass :data:`FLUSH_AT`), then sends it at once: an
HTTP/1.1 client always finishes writing its request before it reads the answer, so the
same bytes leave in the same order, only in fewer sends.

Nothing else changes: the same httpx client (proxies from the environment, TLS verified
against the SDK's CA bundle), the same httpcore pool and HTTP/1.1 parsing, and the same
exceptions. A send that fails is still httpcore's ``WriteError``/``WriteTimeout`` (raised
from the read that flushed it), so the SDK still wraps it in ``APIConnectionError`` caused by
an httpx error that is not a connect error: an outcome that may have reached Stripe
(:mod:`.errors`), exactly as a failed send was classified before. No byte is written before
the connection exists, so a connect failure is still a ``ConnectError`` (nothing sent).

The pool keeps as many idle connections as it may open (:data:`LIMITS`): httpx keeps 20 by
default, so with more charges in flight than that every charge beyond them opened a new
connection (a TLS handshake at Stripe) and the pool closed one afterwards.

Before each request, and again after it, httpcore's pool asks every idle connection whether
the server closed it (``get_extra_info("is_readable")``: a pending end of stream). Through
anyio that question builds the stream's attribute table and a new ``poll`` object each
time, for every idle connection: with tens of connections kept alive it was several
percent of a paid order's CPU. :class:`CoalescingStream` answers it with the same test
(the raw socket polled for input, without waiting; a socket without a descriptor counts
as closed) on a poll object it keeps.
"""

from __future__ import annotations

import select
import socket
import ssl
import typing

import httpcore
import httpx
import stripe

#: Held bytes sent without waiting for a read (a large body is not held whole).
FLUSH_AT = 64 * 1024
#: Connections to the provider at once, all of them kept alive between requests.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)


class CoalescingStream(httpcore.AsyncNetworkStream):
    """A connection whose writes are held until the next read (see the module)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._held = bytearray()
        self._timeout: float | None = None
        #: Sends made on the connection (for tests: one per request).
        self.sends = 0
        #: The connection's socket, polled for a pending end of stream (see the module).
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._poll: typing.Any = None
        if self._socket is not None and self._socket.fileno() >= 0:
            self._poll = select.poll()
            self._poll.register(self._socket.fileno(), select.POLLIN)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._held += buffer
        self._timeout = timeout
        if len(self._held) >= FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        """Send what is held, in one write."""
        if self._held:
            held, self._held = bytes(self._held), bytearray()
            self.sends += 1
            await self._inner.write(held, self._timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self.flush()
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._held.clear()  # a connection closed mid-request: its request is abandoned
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self.flush()  # e.g. a proxy's CONNECT, before the handshake
        secured = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return CoalescingStream(secured)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._poll is not None:
            return self.is_readable()
        return self._inner.get_extra_info(info)

    def is_readable(self) -> bool:
        """Whether reading would not wait (on an idle connection: the server closed it);
        ``True`` once the socket has no descriptor (closed), as httpcore answers."""
        sock = self._socket
        if sock is None or sock.fileno() < 0 or self._poll is None:
            return True
        return bool(self._poll.poll(0))


class CoalescingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, its connections wrapped in :class:`CoalescingStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return CoalescingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return CoalescingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def async_client(*, verify_ssl_certs: bool = True) -> httpx.AsyncClient:
    """The SDK's async httpx client (TLS verified against its CA bundle unless told not to,
    proxies from the environment), with :data:`LIMITS` and its direct connections coalescing
    writes."""
    verify: ssl.SSLContext | bool = False
    if verify_ssl_certs:
        verify = ssl.create_default_context(cafile=stripe.ca_bundle_path)
    client = httpx.AsyncClient(verify=verify, limits=LIMITS)
    coalesce(client)
    return client


def coalesce(client: httpx.AsyncClient) -> bool:
    """Wrap the network backend of ``client``'s default connection pool; ``False`` (and
    ``client`` unchanged) when its transport is not the one this was written for."""
    transport = getattr(client, "_transport", None)
    pool = getattr(transport, "_pool", None)
    if not isinstance(transport, httpx.AsyncHTTPTransport) or type(pool) is not (
        httpcore.AsyncConnectionPool
    ):
        return False
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        return False
    if not isinstance(backend, CoalescingBackend):
        pool._network_backend = CoalescingBackend(backend)
    return True
