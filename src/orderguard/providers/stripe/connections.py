"""The charge's own HTTP/1.1 client: kept-alive connections on an asyncio protocol, answers
read by httptools (llhttp, the parser of Node.js and of uvicorn).

Why (issue 20): the charge is the one request on the path of every paid order, and aiohttp
(its request and response objects, its stream reader, its timers and tracing hooks) cost
most of its CPU: a whole charge, the request built once, costs its process about 0.6 x the
CPU through this client that it costs through aiohttp (0.57 and 0.65 in two runs of five
rounds; one process on uvloop, 32 charges in flight against the sandbox:
``bench/stripe_client.py``, ``docs/benchmarks.md``). Every other
Stripe call still goes through the SDK and aiohttp (:mod:`.transport`); so does the charge
when a proxy is named for the API's address (:mod:`.wire` decides).

What it does, stated so that a test can hold it:

- **one origin**, the API's address: plain HTTP, or HTTPS verified against the CA bundle the
  SDK ships (``stripe.ca_bundle_path``), the host name checked (the SDK's client, which this
  one follows, is always made verifying; ``verify=False`` exists for tests);
- **connections**: at most ``connections`` at once; a request waits for a free one within
  the connect timeout; the most recently used idle connection is taken first, and one idle
  for ``keepalive_s`` is closed (below the 5 s for which uvicorn, among many servers, keeps
  an idle connection, and a second before the ``Keep-Alive: timeout=`` an answer names, so
  that the client, not the server, closes it); a connection whose close has been read is
  never written to (one whose close is still on its way cannot be told: a request sent on
  it is lost, as with any HTTP/1.1 client); a connection is never reused after an answer that says
  ``Connection: close``, after bytes nobody asked for, after a failure, or after a request
  whose caller stopped waiting;
- **requests**: header names are HTTP tokens, values hold no control character (a line break
  would split the request), ``Host`` and ``Content-Length`` are the client's own
  (:func:`check_headers`);
- **answers**: ``Content-Length``, chunked, or (plain HTTP only: over TLS a cut connection
  cannot be told from the server's close) read until the server closes; interim
  ``1xx`` answers skipped; ``gzip`` and ``deflate`` decoded (the ``Accept-Encoding`` aiohttp
  sends by default when neither brotli nor zstd is installed); a head of at most
  :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS` lines, a body of at most ``max_answer``
  bytes, before and after decoding;
- **a failure says whether the request may have left**, as the charge's classification
  (:mod:`.errors`, G3) needs: :class:`RequestNotSent` when no byte of it was written (no
  connection: refused, unknown name, TLS handshake or certificate refused; none within the
  connect timeout, pool included; a header that is refused), else
  :class:`AnswerLost` (closed, reset, timed out, an answer that cannot be read, too large,
  or in an unknown encoding): the charge may have happened.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import httptools

#: Connections to the provider at once, kept alive between requests.
CONNECTIONS = 100
#: Seconds an idle connection is kept for the next request (see the module).
KEEPALIVE_S = 4.0
#: An idle connection due to be closed within this many seconds is closed by the sweep
#: now: uvloop runs a call due within half a millisecond at once, so a sweep may come that
#: early, and would otherwise come back again and again until the time is up.
SWEEP_SLACK_S = 0.001
#: The largest answer read, in bytes, as received and as decoded.
MAX_ANSWER = 16 * 1024 * 1024
#: The largest head of an answer (status line and headers), in bytes, and its most headers.
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
#: Seconds taken off the idle time a server announces (``Keep-Alive: timeout=``).
KEEPALIVE_MARGIN_S = 1.0
#: Headers the client writes itself and a caller may not give.
RESERVED = frozenset({"host", "content-length", "transfer-encoding"})
#: What every request accepts unless its headers say otherwise (aiohttp's defaults).
DEFAULT_HEADERS = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
#: The port of each scheme when the address names none.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: ``zlib``'s window bits for each encoding read (``deflate`` is tried raw as well).
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


#: An HTTP token (RFC 9110): what a header name is made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters no header value may hold but the tab (CR and LF counted apart).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: ``timeout=N`` in a ``Keep-Alive`` header.
_KEEPALIVE_TIMEOUT = re.compile(rb"(?:^|[\s,])timeout\s*=\s*(\d{1,6})(?:$|[\s,])", re.I)


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse headers that cannot be sent as given: a name that is no HTTP token, a value
    with a control character (a line break would split the request), or a header the
    client writes itself (:data:`RESERVED`). :class:`ValueError` says which."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"not a header name: {name!r}")
        if name.lower() in RESERVED:
            raise ValueError(f"the client writes the {name} header itself")
        if "\r" in value or "\n" in value or _CONTROL.search(value):
            raise ValueError(f"the {name} header holds a control character")


class RequestNotSent(ConnectionError):
    """No byte of the request was written: repeating it cannot repeat its effect."""


class AnswerLost(ConnectionError):
    """The request was written, in part or whole, and no whole answer was read: whatever it
    asked for may have happened."""


class Headers(Mapping[str, str]):
    """An answer's headers; names compared without case, the first of a repeated name."""

    __slots__ = ("_values",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in pairs:
            values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({self._values!r})"


class KeepAliveClient:
    """Requests to one HTTP or HTTPS origin over kept-alive connections (see the module)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        verify: bool = True,
        cafile: str | None = None,
        connections: int = CONNECTIONS,
        keepalive_s: float = KEEPALIVE_S,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) address with a host: {base_url!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("an address with credentials in it is not supported")
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_PORTS[parts.scheme]
        name = f"[{self._host}]" if ":" in self._host else self._host
        default_port = self._port == DEFAULT_PORTS[parts.scheme]
        #: The ``Host`` header (the port left out when it is the scheme's, as aiohttp does).
        self.host_header = name if default_port else f"{name}:{self._port}"
        self._where = f"{parts.scheme}://{self.host_header}"
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context(cafile=cafile)
            if not verify:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._size = connections
        self._keepalive_s = keepalive_s
        self._max_answer = max_answer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(connections)
        #: Idle connections, the most recently used last.
        self._idle: list[_Connection] = []
        #: Every open connection, idle or in use (closed with the client).
        self._open: set[_Connection] = set()
        #: The idle sweep's call, and when it is due. The time is kept here, not read from
        #: the handle: uvloop runs a call due within half a millisecond as a plain call,
        #: whose handle has no ``when()``.
        self._sweeper: asyncio.Handle | None = None
        self._sweep_at = math.inf
        #: Bumped by :meth:`aclose` and a new loop: a connection of an earlier one is not kept.
        self._generation = 0
        #: Header names already found to be tokens and not reserved (exactly as given).
        self._known_names: set[str] = set()

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[bytes, int, Headers]:
        """Send one request; its answer's body (decoded), status and headers.

        :raises RequestNotSent: nothing was written (the request can be repeated as is).
        :raises AnswerLost: the request may have reached the server; no answer was read.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        head = self._head(method, path, headers, len(body))
        deadline = loop.time() + self._timeout_s
        conn = await self._acquire(loop, deadline)
        reusable = False
        try:
            answer = conn.exchange(head + body, loop)
            timer = loop.call_at(deadline, conn.expire, self._timeout_s)
            try:
                status, pairs, raw = await answer
            finally:
                timer.cancel()
            answer_headers = Headers(pairs)
            content = self._decoded(raw, answer_headers.get("content-encoding"))
            reusable = conn.reusable  # not after an answer that could not be decoded
        finally:
            self._release(conn, reusable, loop)
        return content, status, answer_headers

    async def aclose(self) -> None:
        """Close every connection (those in use when their answer is read); a later request
        opens new ones."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._bind(asyncio.get_running_loop())  # another loop's: dropped, not awaited
            return
        self._stop_sweeping()
        self._generation += 1
        closing = [conn for conn in self._open if not conn.busy]
        self._idle.clear()
        for conn in closing:
            self._drop(conn)
        if closing:
            await asyncio.wait([conn.lost for conn in closing], timeout=1.0)

    @property
    def open_connections(self) -> int:
        """How many connections are open, idle or in use."""
        return len(self._open)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start afresh in ``loop``: connections and waiters belong to the loop they were
        made in. A client used from a second loop drops the first one's connections (those
        in flight there are not kept when they end, and give back their place to the first
        loop's count, not to this one's)."""
        self._stop_sweeping()
        self._generation += 1
        for conn in self._open:
            conn.close(now=True)
        self._open.clear()
        self._idle.clear()
        self._slots = asyncio.Semaphore(self._size)
        self._loop = loop

    def _head(self, method: str, path: str, headers: Mapping[str, str], length: int) -> bytes:
        if method.upper() == "HEAD":  # its answer announces a body it does not carry
            raise ValueError("HEAD requests are not supported")
        if not self._known_names.issuperset(headers):  # names exactly as given
            try:
                check_headers({name: "" for name in headers})
            except ValueError as exc:
                raise RequestNotSent(f"{exc}: the request was not sent") from exc
            if len(self._known_names) < 256:
                self._known_names.update(headers)
        names = {name.lower() for name in headers}
        lines = [f"{method.upper()} {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in DEFAULT_HEADERS.items()
                  if name.lower() not in names]  # fmt: skip
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {length}")
        text = "\r\n".join(lines)
        # One CR and one LF per line break, none elsewhere, and no other control character:
        # no value can split the request or smuggle a byte a server may read otherwise.
        breaks = len(lines) - 1
        if text.count("\r") != breaks or text.count("\n") != breaks or _CONTROL.search(text):
            raise RequestNotSent("a header holds a control character: the request was not sent")
        return text.encode() + b"\r\n\r\n"

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        limit = min(deadline, loop.time() + self._connect_timeout_s)
        slots, generation = self._slots, self._generation
        try:
            if slots.locked():
                async with asyncio.timeout_at(limit):
                    await slots.acquire()
            else:
                await slots.acquire()  # free: taken without waiting
        except TimeoutError as exc:
            raise RequestNotSent(
                f"none of the {self._size} connections to {self._where} came free within "
                f"{self._connect_timeout_s:g} s"
            ) from exc
        try:
            conn = self._idle_connection(loop.time()) if slots is self._slots else None
            if conn is None:
                conn = await self._connect(loop, limit, generation)
        except BaseException:
            slots.release()
            raise
        conn.slots = slots
        return conn

    def _idle_connection(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.open and now < conn.expires_at:
                return conn
            self._drop(conn)
        return None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, limit: float, generation: int
    ) -> _Connection:
        try:
            async with asyncio.timeout_at(limit):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._max_answer, loop, until_close=self._tls is None),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls is not None else None,
                )
        except TimeoutError as exc:
            raise RequestNotSent(
                f"no connection to {self._where} within {self._connect_timeout_s:g} s"
            ) from exc
        except OSError as exc:  # refused, unreachable, unknown name, TLS refused
            raise RequestNotSent(f"cannot connect to {self._where}: {exc}") from exc
        conn.generation = generation
        self._open.add(conn)
        return conn

    def _release(self, conn: _Connection, reusable: bool, loop: asyncio.AbstractEventLoop) -> None:
        assert conn.slots is not None
        conn.slots.release()
        keep = min(self._keepalive_s, conn.server_keepalive_s)
        if reusable and keep > 0 and conn.generation == self._generation:
            conn.expires_at = loop.time() + keep
            self._idle.append(conn)
            if conn.expires_at < self._sweep_at:  # due first: the sweep comes sooner
                self._sweep_from(loop, conn.expires_at)
        else:
            self._open.discard(conn)
            conn.close(now=True)

    def _drop(self, conn: _Connection) -> None:
        """Close an idle connection (politely: TLS says goodbye)."""
        self._open.discard(conn)
        conn.close()

    def _sweep_from(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """Sweep at ``due`` (instead of when the sweep was due, if it was)."""
        self._stop_sweeping()
        self._sweeper = loop.call_at(due, self._sweep)
        self._sweep_at = due

    def _stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweeper, self._sweep_at = None, math.inf

    def _sweep(self) -> None:
        """Close the connections idle for too long, or about to be (within
        :data:`SWEEP_SLACK_S`: the loop may run a sweep that early); come back for the
        oldest left."""
        self._sweeper, self._sweep_at = None, math.inf
        assert self._loop is not None
        closing_by = self._loop.time() + SWEEP_SLACK_S
        kept = []
        for conn in self._idle:
            if conn.open and closing_by < conn.expires_at:
                kept.append(conn)
            else:
                self._drop(conn)
        self._idle = kept
        if kept:
            self._sweep_from(self._loop, min(c.expires_at for c in kept))

    def _decoded(self, raw: bytes, encoding: str | None) -> bytes:
        coding = (encoding or "identity").strip().lower()
        if coding == "identity":
            return raw
        if coding not in WBITS:
            raise AnswerLost(f"the answer is in an encoding this client cannot read: {coding}")
        for bits in (WBITS[coding], -zlib.MAX_WBITS) if coding == "deflate" else (WBITS[coding],):
            reader = zlib.decompressobj(bits)
            try:
                body = reader.decompress(raw, self._max_answer)
            except zlib.error:
                continue
            if reader.unconsumed_tail:
                raise AnswerLost(f"the answer decodes to more than {self._max_answer} bytes")
            if reader.eof and not reader.unused_data:
                return body
        raise AnswerLost(f"the answer's {coding} encoding cannot be read")


class _Connection(asyncio.Protocol):
    """One connection: a request written, its answer read by httptools' parser."""

    def __init__(
        self, max_answer: int, loop: asyncio.AbstractEventLoop, *, until_close: bool = True
    ) -> None:
        self._parser = httptools.HttpResponseParser(self)
        #: Whether an answer without a length may end with the connection (plain HTTP).
        self._until_close = until_close
        self._transport: asyncio.Transport | None = None
        self._max_answer = max_answer
        self._answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._framed = False  # the answer says its length (Content-Length or chunked)
        self._headed = False  # its head was read
        self._head_bytes = 0  # the head's names and values so far
        self._unheaded = 0  # bytes read while the head was not whole
        self._received = 0  # bytes read for this answer, all told
        self._announced: float | None = None  # this answer's Keep-Alive: timeout=, less margin
        self._keep = False
        #: Whether the connection may carry another request (open, nothing unexplained).
        self.usable = True
        #: Until when it may be taken from the pool (the loop's clock).
        self.expires_at = 0.0
        #: How long the server keeps it idle, less a margin (``Keep-Alive: timeout=``).
        self.server_keepalive_s = math.inf
        #: The count of connections whose place it holds while in use.
        self.slots: asyncio.Semaphore | None = None
        #: The client's generation it was opened in.
        self.generation = 0
        #: Done when the connection is closed.
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- the pool's side -------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._answer is not None and not self._answer.done()

    @property
    def open(self) -> bool:
        """Usable, and its transport not closing (the server's close may not be read yet)."""
        return self.usable and self._transport is not None and not self._transport.is_closing()

    @property
    def reusable(self) -> bool:
        """Its answer was whole, the server keeps it open, and all of the request left this
        transport's buffer (over TLS the buffer under it is not asked: an answer that came
        before a small request was written is not a case the charge meets)."""
        assert self._transport is not None
        return self.usable and self._keep and not self._transport.get_write_buffer_size()

    def exchange(
        self, request: bytes, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        """Write ``request``; the future of its answer (status, header pairs, raw body)."""
        assert self._transport is not None
        if not self.open:  # a write to a closing transport is dropped: nothing would leave
            raise RequestNotSent("the connection closed before the request was written")
        self._answer = answer = loop.create_future()
        self._status, self._headers, self._body = 0, [], []
        self._size, self._framed, self._headed, self._keep = 0, False, False, False
        self._head_bytes = self._unheaded = self._received = 0
        self._announced = None
        self._transport.write(request)
        return answer

    def expire(self, timeout_s: float) -> None:
        self._fail(AnswerLost(f"no whole answer within {timeout_s:g} s"))

    def close(self, *, now: bool = False) -> None:
        """End the connection: politely (TLS says goodbye first), or ``now``, sending
        nothing more (a connection that failed or will not be reused)."""
        self.usable = False
        if self._transport is not None:
            try:
                self._transport.abort() if now else self._transport.close()
            except RuntimeError:  # its loop is closed: the socket goes with the transport
                pass

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close(now=True)

    # -- asyncio's side --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # Bytes nobody asked for begin a message the parser refuses (on_message_begin).
        self._received += len(data)
        if self._received > self._max_answer + MAX_HEAD:  # whatever the parser buffers
            self._fail(AnswerLost(f"the answer is larger than {self._max_answer} bytes"))
            return
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # llhttp's refusals, and the callbacks' own (raised from)
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, AnswerLost):
                self._fail(cause)
            else:
                self._fail(AnswerLost(f"the answer cannot be read: {exc!r}"))
            return
        if not self._headed:  # llhttp keeps no limit on a head: this client does
            self._unheaded += len(data)
            if self._unheaded > MAX_HEAD:
                self._fail(AnswerLost(f"the answer's head is longer than {MAX_HEAD} bytes"))

    def eof_received(self) -> bool:
        self.usable = False  # never written to again, even before connection_lost
        return False  # the transport closes itself; connection_lost reads what came

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self.busy:
            if self._headed and not self._framed and exc is None:  # read until the close
                if self._until_close:
                    self._complete()
                else:
                    self._fail(AnswerLost("an answer without its length ended with the connection"
                                          " over TLS: it may have been cut"))  # fmt: skip
            else:
                cause = f": {exc}" if exc is not None else ""
                self._fail(AnswerLost(f"the connection closed before the whole answer{cause}"))
        if not self.lost.done():
            self.lost.set_result(None)

    # -- httptools' callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self.busy or self._headed:  # an answer to no request, or a second one
            raise AnswerLost("bytes after the answer: the connection cannot be trusted")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD:
            raise AnswerLost(f"the answer's head is longer than {MAX_HEAD} bytes")
        if self._headed:  # a chunked body's trailer: counted, not an answer's header
            return
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self._framed = True
        elif lowered == b"keep-alive":
            said = _KEEPALIVE_TIMEOUT.search(value)
            if said:
                self._announced = int(said.group(1)) - KEEPALIVE_MARGIN_S
        if len(self._headers) >= MAX_HEADERS:
            raise AnswerLost(f"the answer has more than {MAX_HEADERS} headers")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headed = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_answer:
            raise AnswerLost(f"the answer is larger than {self._max_answer} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer: the real one follows
            self._status, self._headers, self._body, self._size = 0, [], [], 0
            self._framed = self._headed = False
            self._announced = None
            return
        if self._announced is not None:  # the final answer's Keep-Alive: timeout=
            self.server_keepalive_s = self._announced
        self._keep = self._parser.should_keep_alive()
        self._complete()

    def _complete(self) -> None:
        assert self._answer is not None
        self._answer.set_result((self._status, self._headers, b"".join(self._body)))
