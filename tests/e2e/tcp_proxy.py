"""A TCP proxy on loopback that loses answers: the request reaches the server, the server
answers, and the proxy hangs up on the client instead of passing the answer on. What a
shopper's back-end sees when its connection drops after the request went through.

Threads and sockets only (no event loop), so sync and async tests both use it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass
class DroppingProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; drops the next :attr:`drop` answers."""

    upstream: tuple[str, int]
    port: int = 0
    #: How many of the next answers to drop (each drop closes that connection)...
    drop: int = 0
    #: ... to requests whose first line starts so (other callers, such as a provider
    #: sandbox posting its webhooks through the same address, are left alone).
    drop_matching: str = ""
    #: Answers dropped so far: the server had answered, the client never got it.
    dropped: int = 0
    #: Requests forwarded, by their first line (e.g. ``POST /v1/orders HTTP/1.1``).
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_next(self, count: int = 1, *, matching: str = "") -> None:
        """Lose the next ``count`` answers to requests whose first line starts with
        ``matching`` (e.g. ``POST /v1/orders``)."""
        with self._lock:
            self.drop, self.drop_matching = count, matching

    def count(self, request_line_prefix: str) -> int:
        """Requests forwarded whose first line starts so (e.g. ``POST /v1/orders ``)."""
        with self._lock:
            return sum(1 for line in self.requests if line.startswith(request_line_prefix))

    def serve(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener, self.port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream)
            except OSError:  # the server is not listening (yet, or any more)
                _close(client)
                continue
            last: list[str] = [""]  # the connection's latest request line
            threading.Thread(
                target=self._requests, args=(client, server, last), daemon=True
            ).start()
            threading.Thread(target=self._answers, args=(server, client, last), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, last: list[str]) -> None:
        """Client to server, noting each request's first line."""
        while data := _read(client):
            if data[:8].split(b" ")[0] in (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH"):
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                with self._lock:
                    self.requests.append(line)
                    last[0] = line
            if not _send(server, data):
                break
        _close(client, server)

    def _answers(self, server: socket.socket, client: socket.socket, last: list[str]) -> None:
        """Server to client, unless this answer is to be dropped."""
        while data := _read(server):
            with self._lock:
                lose = self.drop > 0 and last[0].startswith(self.drop_matching)
                if lose:
                    self.drop -= 1
                    self.dropped += 1
            if lose or not _send(client, data):
                break
        _close(client, server)


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_CHUNK)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


@contextmanager
def dropping_proxy(upstream: tuple[str, int]) -> Iterator[DroppingProxy]:
    """A running :class:`DroppingProxy` in front of ``upstream``."""
    proxy = DroppingProxy(upstream)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
