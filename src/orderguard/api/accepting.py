"""One listening socket shared fairly by the API processes of ``serve --processes N``.

The supervisor binds the socket once and every API process accepts from it (so a process
that stops leaves no queue of its own behind: ``cli/supervisor.py``). uvloop, like asyncio,
accepts every connection waiting in the kernel's queue at each wake-up, so the process that
woke first took a burst of connections whole: with keep-alive clients (a load balancer's
pool, the benchmarks' 64 connections) it then served them all while another process idled
(splits of 64 : 0, 61 : 3 and 43 : 21 measured on two processes).

Here each process accepts one connection at a time and says on an :class:`AcceptBoard` (a
few bytes of a file every process maps) how many connections it holds. A process holding
more than one connection above the least loaded of the others leaves the next connection to
them for :data:`YIELD_S` before it accepts again; the others, woken by the same arrival,
take it. Nothing is refused or lost: a connection waits in the kernel's queue until some
process takes it, one accepted is served even if its process stops at that moment, and a
process that stopped accepting (starting, stopping, dead) is not on the board, so nobody
waits for it. The board is advice: a stale or torn figure only makes a process accept a
connection a little early or late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import socket
import struct
import tempfile
from collections.abc import Callable, Collection
from typing import Any, BinaryIO

log = logging.getLogger("orderguard")

#: A slot of the board: the connections one process holds, or :data:`AWAY`.
_SLOT = struct.Struct("=i")
#: A slot's value when its process does not accept (not started, stopping, gone).
AWAY = -1
#: Seconds a process holding more connections than the least loaded other one (plus one)
#: waits before it accepts again (uvloop's timers count whole milliseconds).
YIELD_S = 0.001
#: How often a process posts its count while it accepts nothing (connections close).
POST_EVERY_S = 0.05
#: Seconds a process stops accepting after the system refused it a connection (out of
#: descriptors or memory), as asyncio's own servers do.
RETRY_AFTER_S = 1.0


class AcceptBoard:
    """The connections each API process holds, one slot per process, in a shared file."""

    def __init__(self, fd: int, *, owner: BinaryIO | None = None) -> None:
        size = os.fstat(fd).st_size
        if size == 0 or size % _SLOT.size:
            raise ValueError(f"an accept board of {size} bytes: not a whole number of slots")
        self.slots = size // _SLOT.size
        self._fd, self._owner = fd, owner
        self._map = mmap.mmap(fd, size)
        self._all = struct.Struct(f"={self.slots}i")

    @classmethod
    def create(cls, slots: int) -> AcceptBoard:
        """A new board of ``slots`` empty slots, in an unlinked file (its descriptor is
        what the API processes inherit)."""
        file = tempfile.TemporaryFile()
        file.write(_SLOT.pack(AWAY) * slots)
        file.flush()
        return cls(file.fileno(), owner=file)

    def fileno(self) -> int:
        return self._fd

    def post(self, slot: int, held: int) -> None:
        """Say that the process of ``slot`` holds ``held`` connections (or is :data:`AWAY`)."""
        _SLOT.pack_into(self._map, slot * _SLOT.size, held)

    def held(self) -> list[int]:
        """Every slot's figure."""
        return list(self._all.unpack_from(self._map))

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections another accepting process holds (``None``: none does)."""
        others = [n for i, n in enumerate(self.held()) if i != slot and n >= 0]
        return min(others, default=None)

    def close(self) -> None:
        self._map.close()
        if self._owner is not None:
            self._owner.close()


class SharedAcceptor:
    """Accepts connections from a socket other processes accept from too (see the module),
    and hands each to ``protocol``'s transport; quacks like the ``asyncio.Server`` uvicorn
    keeps (``close``, ``wait_closed``). ``held``: the connections this process holds.

    It accepts in a reader callback, one connection per call (the loop calls it again while
    the socket stays readable), so stopping never cancels a connection halfway: ``close``
    only stops the callback, and a connection already accepted is handed over all the same.
    """

    def __init__(
        self,
        listener: socket.socket,
        protocol: Callable[[], asyncio.Protocol],
        held: Collection[Any],
        *,
        board: AcceptBoard | None = None,
        slot: int = 0,
    ) -> None:
        listener.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._listener, self._protocol, self._held = listener, protocol, held
        self._board, self._slot = board, slot
        self._closed = False
        self._paused: asyncio.Handle | None = None  # uvloop: a plain Handle when due at once
        self._handing: set[asyncio.Task[None]] = set()
        self._poster: asyncio.Task[None] | None = None
        if board is not None:
            board.post(slot, len(held))
            self._poster = self._loop.create_task(self._post())
        self._loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another process took it, or its client left: nothing to do
        except OSError as exc:  # out of descriptors or memory: try again in a while
            log.warning("cannot accept connections for %.0f s: %s", RETRY_AFTER_S, exc)
            self._pause(RETRY_AFTER_S)
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # as uvloop's own servers answer: at once
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handing = self._loop.create_task(self._hand_over(conn))
        self._handing.add(handing)
        handing.add_done_callback(self._handing.discard)
        if self._ahead():
            self._pause(YIELD_S)

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, conn)
        except Exception:
            log.warning("an accepted connection could not be served", exc_info=True)
            conn.close()

    def _pause(self, seconds: float) -> None:
        self._loop.remove_reader(self._listener.fileno())
        self._paused = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    def _ahead(self) -> bool:
        """Whether this process holds more than one connection above another one's."""
        if self._board is None:
            return False
        held = len(self._held) + len(self._handing)
        self._board.post(self._slot, held)
        fewest = self._board.fewest_elsewhere(self._slot)
        return fewest is not None and held > fewest + 1

    async def _post(self) -> None:
        assert self._board is not None
        while True:
            await asyncio.sleep(POST_EVERY_S)
            self._board.post(self._slot, len(self._held) + len(self._handing))

    def close(self) -> None:
        """Stop accepting (and leave the board); connections accepted are still served."""
        if self._closed:
            return
        self._closed = True
        if self._paused is not None:
            self._paused.cancel()
        with contextlib.suppress(OSError, ValueError):  # the socket may be closed already
            self._loop.remove_reader(self._listener.fileno())
        if self._poster is not None:
            self._poster.cancel()
        if self._board is not None:
            self._board.post(self._slot, AWAY)

    async def wait_closed(self) -> None:
        """Wait until every connection accepted before :meth:`close` was handed over."""
        if self._poster is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._poster
        while self._handing:
            await asyncio.gather(*self._handing, return_exceptions=True)
