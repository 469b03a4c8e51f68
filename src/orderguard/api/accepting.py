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
process takes it, and a process that stopped accepting (starting, stopping, dead) is not
on the board, so nobody waits for it. The board is advice: a stale or torn figure only
makes a process accept a connection a little early or late.
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

    def free_slot(self, taken: Collection[int]) -> int:
        """The first slot not in ``taken``."""
        for slot in range(self.slots):
            if slot not in taken:
                return slot
        raise RuntimeError(f"every slot of the accept board ({self.slots}) is taken")

    def close(self) -> None:
        self._map.close()
        if self._owner is not None:
            self._owner.close()


class SharedAcceptor:
    """Accepts connections from a socket other processes accept from too (see the module),
    and hands each to ``protocol``'s transport; quacks like the ``asyncio.Server`` uvicorn
    keeps (``close``, ``wait_closed``). ``held``: the connections this process holds."""

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
        self._listener, self._protocol, self._held = listener, protocol, held
        self._board, self._slot = board, slot
        self._tasks = [asyncio.create_task(self._accept())]
        if board is not None:
            board.post(slot, len(held))
            self._tasks.append(asyncio.create_task(self._post()))

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of file descriptors, say: try again shortly
                log.warning("cannot accept a connection: %s", exc)
                await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(OSError):  # as uvloop's own servers answer: at once
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await loop.connect_accepted_socket(self._protocol, conn)
            except OSError as exc:  # the client is gone already
                log.debug("an accepted connection failed at once: %s", exc)
                conn.close()
            await asyncio.sleep(YIELD_S if self._ahead() else 0)

    def _ahead(self) -> bool:
        """Whether this process holds more than one connection above another one's."""
        if self._board is None:
            return False
        held = len(self._held)
        self._board.post(self._slot, held)
        fewest = self._board.fewest_elsewhere(self._slot)
        return fewest is not None and held > fewest + 1

    async def _post(self) -> None:
        assert self._board is not None
        while True:
            await asyncio.sleep(POST_EVERY_S)
            self._board.post(self._slot, len(self._held))

    def close(self) -> None:
        """Stop accepting (and leave the board)."""
        for task in self._tasks:
            task.cancel()
        if self._board is not None:
            self._board.post(self._slot, AWAY)

    async def wait_closed(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
