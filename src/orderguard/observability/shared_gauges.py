"""One reading of the database gauges for all the API processes that share a folder.

Each process caches its reading for the ttl; without more, ``serve --processes N`` scraped
in turn (a load balancer, two Prometheus servers) would read the database up to N times per
ttl. With a shared folder (the multi-process metrics folder), the rendered gauges are kept
in a file there. A process whose copy is stale takes the folder's exclusive lock
(``flock``), looks at the file again (another process may have refreshed it meanwhile) and
only then reads the database and replaces the file: one reading per ttl for the folder,
whichever process is scraped. Ages are compared on ``time.monotonic`` (``CLOCK_MONOTONIC``,
the same for every process of a Linux host).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

#: The rendered gauges: a first line with the reading's monotonic time, then the text.
GAUGES_FILE = "orderguard-db-gauges.prom"
LOCK_FILE = "orderguard-db-gauges.lock"
#: How often a process waiting for another's refresh tries the lock again.
POLL_S = 0.005


class SharedGauges:
    """The database gauges' text kept in ``folder`` for every process that shares it."""

    def __init__(
        self, folder: Path, *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._folder = folder
        self._ttl_s = ttl_s
        self._clock = clock

    def fresh(self) -> bytes | None:
        """The shared text when it was read less than the ttl ago, else ``None``."""
        try:
            data = (self._folder / GAUGES_FILE).read_bytes()
        except FileNotFoundError:
            return None
        header, _, text = data.partition(b"\n")
        try:
            taken = float(header)
        except ValueError:  # a file this module did not write: ignored, then replaced
            return None
        return text if 0 <= self._clock() - taken < self._ttl_s else None

    @asynccontextmanager
    async def refreshing(self) -> AsyncIterator[None]:
        """Hold the folder's refresh lock, waiting (without blocking the event loop) while
        another process refreshes; released when the block ends, or the process dies."""
        fd = os.open(self._folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(POLL_S)
            yield
        finally:
            os.close(fd)

    def store(self, text: bytes, *, taken: float) -> None:
        """Replace the shared text at once (readers see the old file or the new one)."""
        partial = self._folder / f"{GAUGES_FILE}.{os.getpid()}.{id(self)}.tmp"
        partial.write_bytes(f"{taken!r}\n".encode() + text)
        os.replace(partial, self._folder / GAUGES_FILE)
