"""How a sandbox is served (``providers/serving.py``, issue 20): in its own process on uvloop
with HTTP parsed by httptools (C), less CPU per charge than asyncio's loop with h11
(``bench/run.py --only paid``: the sandbox's CPU per charge); in a thread of another process
on asyncio's loop, which uvicorn must not replace from that thread."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orderguard.providers import serving


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
    raise AssertionError("not served")


def test_a_sandbox_in_its_own_process_runs_on_uvloop_and_httptools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[uvicorn.Config] = []

    class Recording:
        def __init__(self, config: uvicorn.Config) -> None:
            made.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(serving.uvicorn, "Server", Recording)
    serving.serve_forever(_app, "127.0.0.1", 8100)
    [config] = made
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    import uvloop  # a dependency wherever it builds

    assert config.get_loop_factory() is uvloop.new_event_loop


def test_a_sandbox_in_a_thread_keeps_asyncios_loop_and_parses_with_httptools() -> None:
    config = serving.server_config(_app, log_config=None, log_level=None)
    config.load()
    assert config.loop == "asyncio"
    assert config.get_loop_factory() is asyncio.SelectorEventLoop
    assert config.http_protocol_class is HttpToolsProtocol
