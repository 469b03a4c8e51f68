"""The accept board of ``serve --processes N`` (``api/accepting.py``): what each API process
posts, what the others read of it (across processes: the board is a file they all map), and
how the supervisor hands out slots and marks a process that exited as away. (That the
processes then share a burst of connections evenly is shown on real processes by
``tests/e2e/test_serve_processes.py``.)"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import pytest

from orderguard.api.accepting import AcceptBoard
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
