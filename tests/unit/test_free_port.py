"""``free_port`` names a port for a server in another process, which binds it later: it is
chosen where the kernel never hands a port to anyone (below Linux's ephemeral range), so no
other process's bind to port 0 or outgoing connection can take it in between (the race CI
once lost: ``address already in use``)."""

from __future__ import annotations

import collections
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderguard.api import server
from orderguard.api.server import free_port

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

linux_range = pytest.mark.skipif(not RANGE_FILE.exists(), reason="Linux's port range only")
#: The band below the kernel's range: at least 1,000 ports from 10,000 (not on every host).
with_band = pytest.mark.skipif(
    not RANGE_FILE.exists() or int(RANGE_FILE.read_text().split()[0]) < 11_000,
    reason="no band of ports below the kernel's range here",
)


@pytest.fixture(autouse=True)
def nothing_given_lately(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no port given lately in this process."""
    monkeypatch.setattr(server, "_RECENT", collections.deque(maxlen=256))


def _ephemeral() -> tuple[int, int]:
    low, high = RANGE_FILE.read_text().split()
    return int(low), int(high)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@with_band
def test_the_port_is_free_and_outside_the_range_the_kernel_hands_out() -> None:
    low, _ = _ephemeral()
    ports = [free_port() for _ in range(20)]
    for port in ports:
        assert 10_000 <= port < low
        assert _bindable(port)


@with_band
def test_seeding_random_does_not_make_two_processes_choose_alike() -> None:
    # pytest-randomly seeds `random` alike in every xdist worker before every test
    random.seed(1)
    first = [free_port() for _ in range(5)]
    random.seed(1)
    second = [free_port() for _ in range(5)]
    assert first != second


@pytest.fixture
def held_in_band(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[int]:
    """A port a listener holds, with free_port's band moved around it (the listener's port
    is in the ephemeral range): the band's 5,000th port."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(server, "LOWEST_CHOSEN_PORT", taken - 5_000)
        range_file = tmp_path / "ip_local_port_range"  # the kernel's file, stood in for
        range_file.write_text(f"{taken + 5_000}\t60999\n")
        monkeypatch.setattr(server, "EPHEMERAL_RANGE", range_file)
        yield taken


@linux_range
def test_a_held_port_is_passed_over(monkeypatch: pytest.MonkeyPatch, held_in_band: int) -> None:
    offsets = iter([5_000, 5_000, 5_001])
    monkeypatch.setattr(server.secrets, "randbelow", lambda _n: next(offsets))
    assert free_port() == held_in_band + 1


@linux_range
def test_without_a_band_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = _ephemeral()
    monkeypatch.setattr(server, "EPHEMERAL_RANGE", Path("/nonexistent/port_range"))
    port = free_port()
    assert low <= port <= high
    assert _bindable(port)


@linux_range
def test_when_every_try_is_held_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, held_in_band: int
) -> None:
    low, high = _ephemeral()
    monkeypatch.setattr(server.secrets, "randbelow", lambda _n: 5_000)  # always the held one
    port = free_port()
    assert port != held_in_band
    assert low <= port <= high


@with_band
def test_a_port_given_lately_is_not_given_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller may take several ports before binding any: none is the same."""
    first = free_port()
    low = server.LOWEST_CHOSEN_PORT
    offsets = iter([first - low, first - low, first - low + 1])
    monkeypatch.setattr(server.secrets, "randbelow", lambda _n: next(offsets))
    assert free_port() == first + 1
