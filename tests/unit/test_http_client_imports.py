"""httpcore (under httpx, every provider adapter's client) asks ``import sniffio`` several
times per request; without the package each ask is a failed import that searches sys.path
again (~0.15 ms a time, about 1 ms of CPU per provider request, found profiling the
janitor). With sniffio installed (a runtime dependency) the ask is a ``sys.modules`` hit."""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from types import ModuleType
from typing import Any

import httpcore._synchronization as synchronization


class Recorder(MetaPathFinder):
    """Records every module the import system has to search for."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> None:
        self.searched.append(fullname)
        return None


async def test_httpcore_asks_for_its_async_library_without_searching_sys_path() -> None:
    recorder = Recorder()
    sys.meta_path.insert(0, recorder)
    try:
        for _ in range(3):
            assert synchronization.current_async_library() == "asyncio"
    finally:
        sys.meta_path.remove(recorder)
    assert recorder.searched == []
