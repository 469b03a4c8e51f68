"""The charge's own HTTP/1.1 client (``providers/stripe/connections.py``, issue 20).

Each test scripts a server byte by byte and states what the client must make of it: the
answer's framing (length, chunks, until the close, interim answers), its encodings, the
connections it keeps and closes (counted by the server), TLS, and above all which failures
leave the request unsent (:class:`RequestNotSent`) and which may have delivered it
(:class:`AnswerLost`), the line G3 draws between "unavailable" and "outcome unknown".
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import logging
import socket
import ssl
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.providers.base import ProviderOutcomeUnknown, ProviderUnavailable
from orderguard.providers.stripe import connections
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.connections import AnswerLost, KeepAliveClient, RequestNotSent
from tests.providers.harness import API_KEY, SECRET, charge_request

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]

JSON = b'{"id": "pi_1", "object": "payment_intent"}'


def plain(body: bytes = JSON, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\n{head}content-length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class Server:
    """Reads each request whole and answers it as ``answer`` says; counts connections and
    requests, and the connections the client closed."""

    answer: Answer
    port: int = 0
    connections: int = 0
    closed_by_client: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        self.closed_by_client += 1
                    return
                length = next(
                    (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                     if line.startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.answer(request, writer)
                if writer.is_closing():
                    return
        except ConnectionError:
            return
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> Server:
        made = Server(answer)
        server = await asyncio.start_server(made.handle, "127.0.0.1", 0)
        made.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return made

    yield start
    for server in servers:
        server.close()


def replies(*raw: bytes) -> Answer:
    """Answer each request with the next of ``raw`` (the last one again when they run out)."""
    left = list(raw)

    async def answer(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(left.pop(0) if len(left) > 1 else left[0])
        await writer.drain()

    return answer


def client_for(server: Server, **options: float) -> KeepAliveClient:
    limits = {"timeout_s": 2.0, "connect_timeout_s": 1.0, **options}
    return KeepAliveClient(
        f"http://127.0.0.1:{server.port}",
        timeout_s=limits.pop("timeout_s"),
        connect_timeout_s=limits.pop("connect_timeout_s"),
        **limits,  # type: ignore[arg-type]
    )


async def post(client: KeepAliveClient, key: str = "k1") -> tuple[bytes, int, connections.Headers]:
    return await client.request("POST", "/v1/payment_intents", {"Idempotency-Key": key}, b"a=1")


# -- framing and encodings ------------------------------------------------------------------

FRAMINGS = {
    "content-length": plain(),
    "chunked": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (JSON[:7], JSON[7:]))
        + b"0\r\n\r\n"
    ),
    "interim answers first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
    b"link: </x>\r\n\r\n" + plain(),
    "gzip": plain(gzip.compress(JSON), "Content-Encoding: gzip"),
    "deflate (zlib)": plain(zlib.compress(JSON), "content-encoding: deflate"),
    "deflate (raw)": plain(
        (lambda c: c.compress(JSON) + c.flush())(zlib.compressobj(wbits=-15)),
        "content-encoding: deflate",
    ),
}


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
async def test_every_framing_and_encoding_reads_the_same_body(
    serve: Callable[[Answer], Awaitable[Server]], framing: str
) -> None:
    server = await serve(replies(FRAMINGS[framing]))
    async with aclosing(client_for(server)) as client:
        body, status, _ = await post(client)
        assert (body, status) == (JSON, 200)
        again, _, _ = await post(client, "k2")  # the connection is kept and reads the next
        assert again == JSON
    assert server.connections == 1 and len(server.requests) == 2


async def test_an_answer_read_until_the_close_is_whole_and_its_connection_not_kept(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def until_close(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + JSON)
        await writer.drain()
        writer.close()

    server = await serve(until_close)
    async with aclosing(client_for(server)) as client:
        assert (await post(client))[0] == JSON
        assert (await post(client, "k2"))[0] == JSON
    assert server.connections == 2


async def test_the_answers_headers_are_read_without_case(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain(JSON, "Request-Id: req_1", "Stripe-Should-Retry: true",
                                       "request-id: req_2")))  # fmt: skip
    async with aclosing(client_for(server)) as client:
        _, _, headers = await post(client)
    assert headers["request-id"] == headers["REQUEST-ID"] == "req_1"  # the first of two
    assert headers.get("stripe-should-retry") == "true" and "Stripe-Should-Retry" in headers
    assert headers.get("absent") is None


async def test_the_request_carries_host_length_and_the_default_accept_headers(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain()))
    async with aclosing(client_for(server)) as client:
        await client.request("POST", "/v1/x", {"Accept": "application/json"}, b"amount=1")
    [request] = server.requests
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/x HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Length: 8" in lines and body == b"amount=1"
    assert b"Accept: application/json" in lines and b"Accept: */*" not in lines  # given wins
    assert b"Accept-Encoding: gzip, deflate" in lines


@settings(max_examples=200, deadline=None)
@given(
    framing=st.sampled_from(sorted(FRAMINGS)),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_an_answer_split_anywhere_reads_the_same(framing: str, cuts: list[int]) -> None:
    """However the network cuts the answer into reads, the client reads the same answer."""
    raw = FRAMINGS[framing]
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)]

    async def scenario() -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        conn = connections._Connection(connections.MAX_ANSWER, loop)
        conn.connection_made(_Sink())  # type: ignore[arg-type]
        answer = conn.exchange(b"POST / HTTP/1.1\r\n\r\n", loop)
        for piece in pieces:
            conn.data_received(piece)
        status, pairs, body = await answer
        assert conn.reusable
        client = KeepAliveClient("http://x", timeout_s=1, connect_timeout_s=1)
        return status, client._decoded(body, connections.Headers(pairs).get("content-encoding"))

    assert asyncio.run(scenario()) == (200, JSON)


class _Sink:
    """A transport that takes what is written and closes on request."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


# -- connections kept and closed ------------------------------------------------------------


async def test_an_answer_that_says_close_is_not_followed_on_its_connection(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain(JSON, "connection: close"), plain()))
    async with aclosing(client_for(server)) as client:
        await post(client)
        await post(client, "k2")
        await post(client, "k3")
    assert server.connections == 2  # a new one after the "close", then kept


async def test_an_idle_connection_is_closed_by_the_client_after_the_keepalive(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain()))
    async with aclosing(client_for(server, keepalive_s=0.2)) as client:
        await post(client)
        await asyncio.sleep(0.05)
        await post(client, "k2")  # within the keep-alive: the same connection
        assert server.connections == 1 and server.closed_by_client == 0
        for _ in range(100):  # the sweep closes it without another request
            if server.closed_by_client:
                break
            await asyncio.sleep(0.02)
        assert server.closed_by_client == 1 and client.open_connections == 0
        await post(client, "k3")
        assert server.connections == 2


async def test_closing_the_client_closes_its_idle_connections(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain()))
    client = client_for(server)
    await asyncio.gather(*(post(client, f"k{n}") for n in range(4)))
    assert server.connections == 4 and client.open_connections == 4
    await client.aclose()
    await asyncio.sleep(0.05)
    assert server.closed_by_client == 4 and client.open_connections == 0


@pytest.mark.parametrize("later", [False, True])
async def test_bytes_nobody_asked_for_end_the_connection(
    serve: Callable[[Answer], Awaitable[Server]], later: bool
) -> None:
    """A second answer to one request, in the same read as the first or a later one."""
    extra = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"

    async def twice(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(plain() if later else plain() + extra)
        if later:
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(extra)

    server = await serve(twice)
    async with aclosing(client_for(server)) as client:
        assert (await post(client))[0] == JSON
        await asyncio.sleep(0.05)
        assert (await post(client, "k2"))[0] == JSON
    assert server.connections == 2


# -- failures: sent or not ------------------------------------------------------------------


async def test_a_refused_connection_sent_nothing() -> None:
    with socket_port() as port:
        pass  # closed: nothing listens there
    client = KeepAliveClient(
        f"http://127.0.0.1:{port}", timeout_s=1, connect_timeout_s=1, connections=1
    )
    for _ in range(2):  # the one connection's place is given back each time
        with pytest.raises(RequestNotSent, match="cannot connect"):
            await post(client)


async def test_an_answer_that_never_comes_is_lost_after_the_timeout(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def silent(_: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server = await serve(silent)
    async with aclosing(client_for(server, timeout_s=0.2)) as client:
        with pytest.raises(AnswerLost, match=r"within 0\.2 s"):
            await post(client)
        assert len(server.requests) == 1  # it had arrived
        assert client.open_connections == 0  # the connection is not reused


async def test_waiting_for_a_connection_longer_than_the_connect_timeout_sent_nothing(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def slow(_: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        writer.write(plain())

    server = await serve(slow)
    client = client_for(server, connections=1, connect_timeout_s=0.1, timeout_s=2.0)
    async with aclosing(client):
        first = asyncio.create_task(post(client))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestNotSent, match="came free"):
            await post(client, "k2")
        assert (await first)[0] == JSON
    assert len(server.requests) == 1  # the second never left


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + JSON, "closed before"),
        (b"HTTP/1.1 200 OK\r\ncontent-len", "closed before"),
        (b"", "closed before"),
        (b"SMTP ready\r\n\r\n", "cannot be read"),
        (plain(b"not gzip", "content-encoding: gzip"), "cannot be read"),
        (plain(gzip.compress(JSON) + b"junk", "content-encoding: gzip"), "cannot be read"),
        (plain(JSON, "content-encoding: br"), "cannot read: br"),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
         "cannot be read"),
    ],
)  # fmt: skip
async def test_an_answer_that_cannot_be_read_whole_is_lost(
    serve: Callable[[Answer], Awaitable[Server]], answer: bytes, says: str
) -> None:
    async def once(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await serve(once)
    async with aclosing(client_for(server)) as client:
        with pytest.raises(AnswerLost, match=says):
            await post(client)
    assert len(server.requests) == 1


async def test_a_connection_reset_after_the_request_left_is_lost(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def reset(_: bytes, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # an RST, not a FIN

    server = await serve(reset)
    async with aclosing(client_for(server)) as client:
        with pytest.raises(AnswerLost, match=r"closed before the whole answer: .*reset"):
            await post(client)
    assert len(server.requests) == 1


async def test_a_connection_whose_answer_could_not_be_decoded_is_not_reused(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain(b"not gzip", "content-encoding: gzip"), plain()))
    async with aclosing(client_for(server)) as client:
        with pytest.raises(AnswerLost, match="gzip encoding cannot be read"):
            await post(client)
        assert (await post(client, "k2"))[0] == JSON
    assert server.connections == 2


async def test_an_answer_too_large_is_lost_as_sent_and_as_decoded(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    big = b"x" * 5000
    server = await serve(replies(plain(big), plain(gzip.compress(big), "content-encoding: gzip")))
    async with aclosing(client_for(server, max_answer=4096)) as client:
        with pytest.raises(AnswerLost, match="larger than 4096 bytes"):
            await post(client)
        with pytest.raises(AnswerLost, match="decodes to more than 4096"):  # 5000 decoded
            await post(client, "k2")


async def test_a_header_with_a_line_break_is_never_sent(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain()))
    async with aclosing(client_for(server)) as client:
        for value in ("k\r\nX-Injected: 1", "k\nX: 1", "k\rX"):
            with pytest.raises(RequestNotSent, match="control character"):
                await client.request("POST", "/v1/x", {"Idempotency-Key": value}, b"")
        assert (await post(client))[0] == JSON
    assert len(server.requests) == 1 and b"X-Injected" not in server.requests[0]


async def test_a_request_its_caller_stopped_waiting_for_frees_its_connection(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def first_hangs(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"hang" in request:
            await asyncio.sleep(5)
        writer.write(plain())

    server = await serve(first_hangs)
    async with aclosing(client_for(server, connections=1)) as client:
        hanging = asyncio.create_task(post(client, "hang"))
        await asyncio.sleep(0.05)
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        assert (await post(client, "k2"))[0] == JSON  # the one slot is free again
    assert server.connections == 2  # the abandoned connection was not reused


async def test_a_connection_the_server_closed_is_never_written_to(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    """Closed after its answer without a word, or its close read and not yet handled: the
    next request takes a new connection and is answered, not lost."""

    async def then_close(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(plain())
        await writer.drain()
        writer.close()

    server = await serve(then_close)
    async with aclosing(client_for(server)) as client:
        await post(client)
        await asyncio.sleep(0.05)
        assert (await post(client, "k2"))[0] == JSON
        assert server.connections == 2
        await asyncio.sleep(0.05)  # its close read too
        server.answer = replies(plain())
        await post(client, "k3")  # a connection the server keeps
        client._idle[-1].eof_received()  # its close read, connection_lost still to come
        assert (await post(client, "k4"))[0] == JSON
    assert server.connections == 4 and len(server.requests) == 4


@pytest.mark.parametrize(("timeout", "connections_opened"), [(1, 2), (3, 1)])
async def test_an_idle_time_the_server_announces_is_kept_to(
    serve: Callable[[Answer], Awaitable[Server]], timeout: int, connections_opened: int
) -> None:
    """``Keep-Alive: timeout=1``: closed a second early, that is at once; ``3``: kept."""
    server = await serve(replies(plain(JSON, f"Keep-Alive: timeout={timeout}, max=100")))
    async with aclosing(client_for(server)) as client:
        await post(client)
        await asyncio.sleep(0.05)
        await post(client, "k2")
    assert server.connections == connections_opened


async def test_a_shorter_idle_time_announced_later_is_kept_to_first(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    """Two idle connections: the one released last, with the shorter idle time its server
    announced, is closed first (at 1 s), not when the other one's time is up (3 s)."""

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"short" in request:
            await asyncio.sleep(0.05)
            writer.write(plain(JSON, "Keep-Alive: timeout=2"))
        else:
            writer.write(plain())

    server = await serve(answer)
    async with aclosing(client_for(server, keepalive_s=3.0)) as client:
        await asyncio.gather(post(client, "long"), post(client, "short"))
        assert server.connections == 2
        await asyncio.sleep(1.5)
        assert server.closed_by_client == 1 and client.open_connections == 1


def never_connects(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, *, until: float = 60.0
) -> None:
    """The loop's connections take ``until`` seconds to open (then open as usual)."""
    opening = loop.create_connection

    async def slowly(*args: object, **kwargs: object) -> object:
        await asyncio.sleep(until)
        return await opening(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "create_connection", slowly)


async def test_no_connection_within_the_connect_timeout_sent_nothing(
    serve: Callable[[Answer], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve(replies(plain()))
    never_connects(asyncio.get_running_loop(), monkeypatch)
    client = client_for(server, connect_timeout_s=0.1, connections=1)
    for _ in range(2):  # the one place is given back each time
        with pytest.raises(RequestNotSent, match=r"no connection to .* within 0\.1 s"):
            await post(client)
    assert server.connections == 0


async def test_a_request_cancelled_while_it_waits_or_connects_gives_its_place_back(
    serve: Callable[[Answer], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve(replies(plain()))
    loop = asyncio.get_running_loop()
    with monkeypatch.context() as patch:
        never_connects(loop, patch)
        client = client_for(server, connections=1, connect_timeout_s=5)
        connecting = asyncio.create_task(post(client))
        waiting = asyncio.create_task(post(client, "k2"))
        await asyncio.sleep(0.05)
        for task in (connecting, waiting):
            task.cancel()
        for task in (connecting, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
    try:
        assert (await post(client, "k3"))[0] == JSON
    finally:
        await client.aclose()
    assert server.connections == 1


async def test_closing_the_client_mid_request_keeps_no_connection(
    serve: Callable[[Answer], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request answered, and a connection opened, after ``aclose``: neither is kept."""

    async def slow(_: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)
        writer.write(plain())

    server = await serve(slow)
    client = client_for(server)
    answered = asyncio.create_task(post(client))
    await asyncio.sleep(0.05)  # on the wire
    never_connects(asyncio.get_running_loop(), monkeypatch, until=0.1)
    connecting = asyncio.create_task(post(client, "k2"))
    await asyncio.sleep(0.02)  # opening
    await client.aclose()
    assert (await answered)[0] == JSON and (await connecting)[0] == JSON
    await asyncio.sleep(0.05)
    assert client.open_connections == 0 and server.closed_by_client == 2


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b"x-big: " + b"a" * 100_000 + b"\r\n", "head is longer than 65536"),
        (b"".join(b"x-%d: 1\r\n" % n for n in range(150)), "more than 100 headers"),
    ],
)
async def test_an_answer_with_too_big_a_head_is_lost(
    serve: Callable[[Answer], Awaitable[Server]], head: bytes, says: str
) -> None:
    server = await serve(replies(b"HTTP/1.1 200 OK\r\n" + head + b"content-length: 0\r\n\r\n"))
    async with aclosing(client_for(server)) as client:
        with pytest.raises(AnswerLost, match=says):
            await post(client)


async def test_a_head_that_never_ends_is_lost_before_the_timeout(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    """One header that goes on and on: refused once it passes the limit, not read on."""

    async def endless(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nx-endless: ")
        for _ in range(40):
            writer.write(b"a" * 4096)
            await writer.drain()
            await asyncio.sleep(0.001)
        await asyncio.sleep(5)

    server = await serve(endless)
    async with aclosing(client_for(server, timeout_s=3.0)) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(AnswerLost, match="head is longer than 65536"):
            await post(client)
        assert asyncio.get_running_loop().time() - started < 2.0  # not the timeout


async def test_a_chunked_answers_trailer_is_not_taken_for_its_headers(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    """A trailer naming an encoding, a retry verdict or an idle time changes none of them."""
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: content-encoding\r\n\r\n"
        + f"{len(JSON):x}\r\n".encode()
        + JSON
        + b"\r\n0\r\n"
        b"Content-Encoding: gzip\r\nStripe-Should-Retry: true\r\nKeep-Alive: timeout=1\r\n\r\n"
    )
    server = await serve(replies(answer))
    async with aclosing(client_for(server)) as client:
        body, status, headers = await post(client)
        assert (body, status) == (JSON, 200)
        assert "content-encoding" not in headers and "stripe-should-retry" not in headers
        await post(client, "k2")  # not closed at once for the trailer's timeout=1
    assert server.connections == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.test"},
        {"content-length": "0"},
        {"Transfer-Encoding": "chunked"},
        {"Bad Name": "1"},
        {"X:Colon": "1"},
        {"X-Nul": "a\x00b"},
        {"X-Escape": "a\x1bb"},
    ],
)
async def test_a_header_the_client_cannot_send_as_given_sends_nothing(
    serve: Callable[[Answer], Awaitable[Server]], headers: dict[str, str]
) -> None:
    server = await serve(replies(plain()))
    async with aclosing(client_for(server)) as client:
        with pytest.raises(RequestNotSent):
            await client.request("POST", "/v1/x", headers, b"")
        with pytest.raises(ValueError):
            connections.check_headers(headers)
        assert (await client.request("POST", "/v1/x", {"X-Tab": "a\tb"}, b""))[0] == JSON
    assert len(server.requests) == 1


async def test_a_header_name_that_only_lowercases_to_a_known_one_is_checked(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    """The Kelvin sign lowercases to ``k``: a name checked once is not a pass for it."""
    server = await serve(replies(plain()))
    async with aclosing(client_for(server)) as client:
        await post(client)  # Idempotency-Key, checked and remembered
        with pytest.raises(RequestNotSent, match="not a header name"):
            await client.request("POST", "/v1/x", {"Idempotency-\u212aey": "k"}, b"")
    assert len(server.requests) == 1


def test_a_client_used_from_a_second_event_loop_starts_afresh() -> None:
    """One loop per ``asyncio.run``: the first loop's connection is not carried into the
    second (it belongs to a closed loop), and closing from the second does not fail."""
    opened: list[int] = []

    async def one_run(client: KeepAliveClient | None) -> KeepAliveClient:
        made = Server(replies(plain()))
        server = await asyncio.start_server(made.handle, "127.0.0.1", 0)
        made.port = server.sockets[0].getsockname()[1]
        async with server:
            client = client or client_for(made)
            client._port = made.port  # the same client, this run's server
            assert (await post(client))[0] == JSON
            opened.append(made.connections)
        return client

    first = asyncio.run(one_run(None))
    second = asyncio.run(one_run(first))
    assert opened == [1, 1] and second is first

    async def close_elsewhere() -> None:
        await first.aclose()

    asyncio.run(asyncio.wait_for(close_elsewhere(), timeout=0.5))
    assert first.open_connections == 0


async def test_the_default_accept_headers_give_way_to_a_callers_in_any_case(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await serve(replies(plain()))
    async with aclosing(client_for(server)) as client:
        await client.request("POST", "/v1/x", {"accept-encoding": "identity"}, b"")
    lines = server.requests[0].lower().split(b"\r\n")
    assert [line for line in lines if line.startswith(b"accept-encoding")] == [
        b"accept-encoding: identity"
    ]


# -- TLS ------------------------------------------------------------------------------------


def certificate(folder: Path, names: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (127.0.0.1 and ``localhost``), and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", f"subjectAltName={names}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Server, Path]]:
    cert, key = certificate(tmp_path, getattr(request, "param", "DNS:localhost,IP:127.0.0.1"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    made = Server(replies(plain()))
    server = await asyncio.start_server(made.handle, "127.0.0.1", 0, ssl=context)
    made.port = server.sockets[0].getsockname()[1]
    async with server:
        yield made, cert


async def test_over_https_an_answer_ended_only_by_the_close_is_lost(
    tls_server: tuple[Server, Path],
) -> None:
    """Without a length, only the close ends an answer; over TLS a close need not come from
    the server (a reset or a FIN from the path cuts it short), so such an answer is not
    taken as whole (Stripe always says its length). Over plain HTTP it is read whole
    (``test_an_answer_read_until_the_close_is_whole_and_its_connection_not_kept``)."""
    server, cert = tls_server

    async def until_close(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + JSON)
        await writer.drain()
        writer.close()

    server.answer = until_close
    client = KeepAliveClient(
        f"https://127.0.0.1:{server.port}", timeout_s=2, connect_timeout_s=2, cafile=str(cert)
    )
    try:
        with pytest.raises(AnswerLost, match="without its length"):
            await post(client)
    finally:
        await client.aclose()
    assert len(server.requests) == 1


async def test_https_is_verified_against_the_authorities_given(
    tls_server: tuple[Server, Path],
) -> None:
    server, cert = tls_server
    url = f"https://127.0.0.1:{server.port}"
    trusted = KeepAliveClient(url, timeout_s=2, connect_timeout_s=2, cafile=str(cert))
    try:
        assert (await post(trusted))[0] == JSON
    finally:
        await trusted.aclose()
    stranger = KeepAliveClient(url, timeout_s=2, connect_timeout_s=2)  # the system's CAs
    with pytest.raises(RequestNotSent, match="CERTIFICATE_VERIFY_FAILED"):
        await post(stranger)
    unverified = KeepAliveClient(url, timeout_s=2, connect_timeout_s=2, verify=False)
    try:
        assert (await post(unverified))[0] == JSON
    finally:
        await unverified.aclose()
    assert len(server.requests) == 2  # the refused handshake carried no request


@pytest.mark.parametrize("tls_server", ["DNS:localhost"], indirect=True)
async def test_https_checks_the_host_name(tls_server: tuple[Server, Path]) -> None:
    """A certificate its authority signed, for another name than the one connected to."""
    server, cert = tls_server
    url = f"https://127.0.0.1:{server.port}"  # the certificate names localhost only
    client = KeepAliveClient(url, timeout_s=2, connect_timeout_s=2, cafile=str(cert))
    with pytest.raises(RequestNotSent, match="IP address mismatch"):
        await post(client)
    unverified = KeepAliveClient(url, timeout_s=2, connect_timeout_s=2, verify=False)
    try:
        assert (await post(unverified))[0] == JSON  # the same server, name not checked
    finally:
        await unverified.aclose()
    assert len(server.requests) == 1


# -- through the adapter --------------------------------------------------------------------


async def test_the_adapter_reports_an_unsent_charge_unavailable_and_a_lost_one_unknown(
    serve: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def hang_up(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await serve(hang_up)
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{server.port}"
    )
    try:
        assert provider._wire.direct is not None  # the charge's own client
        with pytest.raises(ProviderOutcomeUnknown, match="AnswerLost"):
            await provider.create_payment(charge_request())
        with pytest.raises(ProviderUnavailable, match="RequestNotSent"):
            await provider.create_payment(charge_request(idempotency_key="k\r\nX: 1"))
    finally:
        await provider.aclose()


async def test_a_defect_in_the_client_is_reported_unknown_and_logged_whole(
    serve: Callable[[Answer], Awaitable[Server]], caplog: pytest.LogCaptureFixture
) -> None:
    """A failure the client does not foresee may strike after the request left: the charge
    is reported unknown as any other, and the error logged with its traceback (it was not:
    a defect of the idle sweep lost answers under load without a line in the log)."""
    server = await serve(replies(plain()))
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{server.port}"
    )
    direct = provider._wire.direct
    assert direct is not None
    sent = direct.request

    async def broken(*args: object) -> object:
        await sent(*args)  # type: ignore[arg-type]
        raise AttributeError("'Handle' object has no attribute 'when'")

    try:
        with caplog.at_level(logging.ERROR, logger="orderguard"):
            await provider.create_payment(charge_request())  # a foreseen end: not logged
            assert not caplog.records
            direct.request = broken  # type: ignore[method-assign]
            with pytest.raises(ProviderOutcomeUnknown, match="AttributeError"):
                await provider.create_payment(charge_request(idempotency_key="k2"))
    finally:
        await provider.aclose()
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "unexpectedly" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is AttributeError
    assert len(server.requests) == 2


def test_an_api_key_with_a_line_break_is_refused_when_the_provider_is_made() -> None:
    """A secret file's trailing newline: refused at start, not on every charge."""
    with pytest.raises(ValueError, match="Authorization header holds a control character"):
        StripeProvider(api_key=f"{API_KEY}\n", webhook_secret=SECRET, base_url="http://x")


async def test_a_proxy_in_the_environment_sends_the_charge_through_it(
    serve: Callable[[Answer], Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = plain(
        b'{"id": "pi_p", "object": "payment_intent", "amount": 2599, "currency": "eur",'
        b' "status": "succeeded", "metadata": {}}'
    )
    proxy = await serve(replies(answer))
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url="https://api.stripe.invalid"
    )
    try:
        assert provider._wire.direct is None  # the charge goes through aiohttp and the proxy
        with pytest.raises(ProviderUnavailable):  # the proxy does not tunnel: refused
            await provider.create_payment(charge_request())
    finally:
        await provider.aclose()
    [request] = proxy.requests
    assert request.startswith(b"CONNECT api.stripe.invalid:443 HTTP/1.1")


class socket_port:
    """A free TCP port on loopback, held while the block runs."""

    def __enter__(self) -> int:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self._sock.close()


def test_no_answer_is_lost_to_the_idle_sweep_on_uvloop() -> None:
    """uvloop runs a timer due within half a millisecond as a plain call: its handle has no
    due time. The client's idle bookkeeping, done as each answer is handed over, must not
    depend on one (serve lost charges' answers this way under load: the charge made at the
    provider, the order left ``payment_unknown``). Idle times this short keep the sweep due
    within that half millisecond while answers arrive."""

    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()  # what makes the case: no due time to read
        assert not isinstance(loop.call_at(loop.time() + 0.0004, lambda: None), asyncio.TimerHandle)
        made = Server(replies(plain()))
        server = await asyncio.start_server(made.handle, "127.0.0.1", 0)
        made.port = server.sockets[0].getsockname()[1]
        async with server, aclosing(client_for(made, keepalive_s=0.0004)) as client:
            bodies: list[bytes] = []
            for round_ in range(40):
                answers = await asyncio.gather(*(post(client, f"k{round_}-{n}") for n in range(16)))
                bodies += [body for body, _, _ in answers]
            return bodies

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        bodies = runner.run(run())
    assert bodies == [JSON] * 640
