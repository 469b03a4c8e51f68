"""Log lines captured as JSON through orderguard's own logging set-up, for tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from orderguard.observability.logs import configure_logging


@contextmanager
def json_logs(level: int) -> Iterator[io.StringIO]:
    """The process's logging configured as ``serve`` does, at ``level``, into a buffer;
    the root logger's handlers and level, and structlog, restored afterwards."""
    root = logging.getLogger()
    handlers, previous = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("json", level=level, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(previous)
        structlog.reset_defaults()
