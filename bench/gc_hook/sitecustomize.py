"""Loaded by Python at start-up when this folder is on ``PYTHONPATH`` (``bench/gc_cost.py``
puts it there for the server it starts): times every garbage collection of the process.

``OG_GC_STATS=PATH`` writes ``PATH.<pid>`` (JSON: collections and seconds per generation,
cumulative) at start-up, then after each collection.
``OG_GC_DEFAULTS=1`` keeps Python's default collector settings: ``gc.freeze`` and
``gc.set_threshold`` do nothing, so what ``orderguard serve`` settles at start-up stays as
Python left it.
"""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

if os.environ.get("OG_GC_DEFAULTS"):
    gc.freeze = lambda: None
    gc.set_threshold = lambda *args: None

if os.environ.get("OG_GC_STATS"):
    _PATH = f"{os.environ['OG_GC_STATS']}.{os.getpid()}"
    _STATS: dict[str, Any] = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    _STARTED = [0.0]

    def _write() -> None:
        # whole or not at all: bench/gc_cost.py may read it at any moment
        with open(f"{_PATH}.new", "w", encoding="utf-8") as out:
            json.dump(_STATS, out)
        os.replace(f"{_PATH}.new", _PATH)

    def _timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _STARTED[0] = time.perf_counter()
            return
        generation = info["generation"]
        _STATS["collections"][generation] += 1
        _STATS["seconds"][generation] += time.perf_counter() - _STARTED[0]
        _write()  # about 100 small writes a second with Python's defaults: under 1 % of a core

    _write()  # at once: a missing file means this hook did not run
    gc.callbacks.append(_timed)
