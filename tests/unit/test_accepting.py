"""The accept board of ``serve --processes N`` (``api/accepting.py``): what each API process
posts, what the others read of it (across processes: the board is a file they all map), and
how the supervisor hands out slots and marks a process that exited as away. (That the
processes then share a burst of connections evenly is shown on real processes by
``tests/e2e/test_serve_processes.py``.)"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from typing import ClassVar

import pytest

from orderguard.api.accepting import AcceptBoard, SharedAcceptor
from orderguard.cli.supervisor import Supervisor

#: What a slot says when its process accepts nothing.
AWAY = -1


def test_a_new_board_is_empty_and_each_slot_holds_what_its_process_posted() -> None:
    board = AcceptBoard.create(slots=3)
    try:
        assert board.slots == 3
        assert board.held() == [AWAY, AWAY, AWAY]
        assert board.fewest_elsewhere(0) is None  # nobody else accepts
        board.post(0, 5)
        assert board.fewest_elsewhere(0) is None
        assert board.fewest_elsewhere(1) == 5
        board.post(1, 3)
        assert board.held() == [5, 3, AWAY]
        assert board.fewest_elsewhere(0) == 3
        assert board.fewest_elsewhere(1) == 5
        assert board.fewest_elsewhere(2) == 3
        board.post(1, AWAY)  # stopped accepting: nobody waits for it
        assert board.fewest_elsewhere(0) is None
    finally:
        board.close()


def test_another_process_reads_and_writes_the_same_board() -> None:
    board = AcceptBoard.create(slots=2)
    try:
        board.post(0, 7)
        code = (
            "import sys; from orderguard.api.accepting import AcceptBoard; "
            f"b = AcceptBoard({board.fileno()}); print(b.held()); b.post(1, 4)"
        )
        seen = subprocess.run(
            [sys.executable, "-c", code],
            pass_fds=(board.fileno(),),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert seen.strip() == "[7, -1]"
        assert board.held() == [7, 4]
    finally:
        board.close()


def test_a_file_that_is_no_board_is_refused() -> None:
    with tempfile.TemporaryFile() as file:
        with pytest.raises(ValueError, match="0 bytes"):
            AcceptBoard(file.fileno())
        file.write(b"12345")
        file.flush()
        with pytest.raises(ValueError, match="5 bytes"):
            AcceptBoard(file.fileno())


def test_the_supervisor_gives_each_api_process_a_free_slot_and_clears_an_exited_ones() -> None:
    board = AcceptBoard.create(slots=4)
    slots: list[int | None] = []

    def command(
        role: str, ready: int | None, slot: int | None
    ) -> tuple[list[str], tuple[int, ...]]:
        slots.append(slot)
        return [sys.executable, "-c", "import time; time.sleep(60)"], ()

    supervisor = Supervisor(2, True, command, {}, 1.0, board=board)
    try:
        first, second = supervisor._spawn("api"), supervisor._spawn("api")
        supervisor._spawn("worker")
        assert slots == [0, 1, None]
        board.post(0, 9)  # as the first process would, then it dies
        board.post(1, 2)
        first.process.kill()
        deadline = time.monotonic() + 30
        while first in supervisor.children and time.monotonic() < deadline:
            supervisor._tick()
            time.sleep(0.01)
        assert board.held()[:2] == [AWAY, 2]
        supervisor._spawn("api")  # its replacement takes the slot it left
        assert slots[-1] == 0
        assert second.slot == 1
    finally:
        supervisor._stop(list(supervisor.children))
        board.close()


class _Hello(asyncio.Protocol):
    """Says which connection of the test it is, then waits."""

    made: ClassVar[list[_Hello]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(self)
        transport.write(f"hello {len(self.made)}\n".encode())


async def _greeting(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer, await asyncio.wait_for(reader.readline(), 10)


async def test_an_acceptor_serves_each_connection_and_one_failure_stops_nothing() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    calls = 0

    def protocol() -> asyncio.Protocol:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the first connection's protocol fails")
        return _Hello()

    _Hello.made = []
    acceptor = SharedAcceptor(listener, protocol, _Hello.made)
    opened = []
    try:
        first = await asyncio.open_connection("127.0.0.1", port)
        opened.append(first[1])
        assert await asyncio.wait_for(first[0].read(), 10) == b""  # closed, not served
        for n in range(2, 5):
            _, writer, said = await _greeting(port)
            opened.append(writer)
            assert said == f"hello {n - 1}\n".encode()
    finally:
        acceptor.close()
        await acceptor.wait_closed()
        for writer in opened:
            writer.close()
        listener.close()
    assert calls == 4


async def test_a_closed_acceptor_takes_no_more_connections_and_leaves_the_board() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    board = AcceptBoard.create(slots=2)
    _Hello.made = []
    acceptor = SharedAcceptor(listener, _Hello, _Hello.made, board=board, slot=1)
    writers = []
    try:
        _, writer, said = await _greeting(port)
        writers.append(writer)
        assert said == b"hello 1\n"
        assert board.held()[1] == 1
        acceptor.close()
        await acceptor.wait_closed()
        assert board.held() == [AWAY, AWAY]
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(late_writer)  # queued by the kernel, taken by nobody here
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(late_reader.readline(), 0.3)
        assert len(_Hello.made) == 1
    finally:
        for w in writers:
            w.close()
        listener.close()
        board.close()
