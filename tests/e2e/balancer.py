"""A TCP load balancer in front of several ``serve`` hosts, as a deployment puts one.

Each connection it accepts goes to the next host in turn (round robin) and is copied both
ways until either side closes. It counts the connections it gave each host: the test's own
record of which hosts were sent work, trusting nothing the hosts say of themselves.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import cycle

from orderguard.api.server import free_port

#: Bytes copied per read.
CHUNK = 65536


class Balancer:
    """Round robin over ``upstreams`` (``host:port``), listening on 127.0.0.1:``port``."""

    def __init__(self, upstreams: Sequence[tuple[str, int]]) -> None:
        self.port = free_port()
        self.upstreams = list(upstreams)
        #: Connections handed to each upstream (by its port).
        self.connections: Counter[int] = Counter()
        self._next = cycle(self.upstreams)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="balancer", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port, backlog=512)
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = next(self._next)
        self.connections[port] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()  # the client sees a reset, as behind a real balancer
            return
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    def start(self) -> Balancer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the balancer did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends or either side breaks; then close ``sink``."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with suppress(ConnectionError, OSError, RuntimeError):
            sink.close()


@contextmanager
def balancing(upstreams: Sequence[tuple[str, int]]) -> Iterator[Balancer]:
    """A started balancer, always stopped afterwards."""
    balancer = Balancer(upstreams).start()
    try:
        yield balancer
    finally:
        balancer.stop()
