"""Structured logs through structlog, for structlog's own loggers and for every ``logging``
call (orderguard's modules, uvicorn, httpx): one set of processors, one redaction.

``ORDERGUARD_LOG_FORMAT=json`` writes one JSON object per line (production);
``console`` writes readable, coloured lines. Unset, it is ``console`` when stderr is a
terminal and ``json`` otherwise (under a process manager, in a container, in CI).
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial
from typing import Any, Literal, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from orderguard.observability.context import personal_values
from orderguard.observability.redaction import redact_field, redact_text
from orderguard.providers import registry

LogFormat = Literal["json", "console"]
#: Marks the handler configure_logging installs (so a second call replaces only it).
_MARK = "_orderguard_handler"
#: Loggers too chatty at INFO.
_QUIET = ("httpx", "httpcore", "aiosqlite", "asyncio", *registry.loggers())


def log_format(env: dict[str, str] | None = None, stream: TextIO | None = None) -> LogFormat:
    """The format asked for in ``ORDERGUARD_LOG_FORMAT``, else by whether ``stream`` is a TTY."""
    env = dict(os.environ if env is None else env)
    chosen = env.get("ORDERGUARD_LOG_FORMAT", "").strip().lower()
    if chosen in {"json", "console"}:
        return chosen  # type: ignore[return-value]
    stream = stream or sys.stderr
    return "console" if stream.isatty() else "json"


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The processor that takes personal data out of every field of a log line."""
    known = personal_values()
    return {
        key: value if key.startswith("_") else redact_field(key, value, known)
        for key, value in event.items()
    }


def _format_exception(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Render ``exc_info`` as text (plain, no local variables) so it can be redacted."""
    event = structlog.processors.format_exc_info(_, __, event)
    if isinstance(event.get("exception"), str):
        event["exception"] = redact_text(event["exception"], personal_values())
    return event


def _shared() -> list[Processor]:
    # The level, the logger's name and the time are added after ``redact``: they are ours
    # (each processor overwrites any value a caller passed), so there is nothing to redact.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        _format_exception,
        redact,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def log_level(env: dict[str, str] | None = None) -> int:
    """``ORDERGUARD_LOG_LEVEL`` (debug, info, warning, error); info when unset or unknown."""
    env = dict(os.environ if env is None else env)
    name = env.get("ORDERGUARD_LOG_LEVEL", "info").strip().upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def configure_logging(
    fmt: LogFormat | None = None, *, level: int | None = None, stream: TextIO | None = None
) -> None:
    """Send structlog and ``logging`` through the same processors to ``stream`` (stderr)."""
    fmt = fmt or log_format(stream=stream)
    level = log_level() if level is None else level
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=(stream or sys.stderr).isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    shared = _shared()
    structlog.configure(
        processors=[
            *shared[:1],
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler: logging.Handler = logging.StreamHandler(stream) if stream else _Stderr()
    handler.setFormatter(formatter)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(previous)  # ours from an earlier call; others are left alone
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)  # the level set here, whatever set one before
    for chatty in _QUIET:
        logging.getLogger(chatty).setLevel(logging.WARNING if level >= logging.INFO else 0)
    driver = logging.getLogger("aiosqlite")
    if not any(isinstance(f, _WithoutParameters) for f in driver.filters):
        driver.addFilter(_WithoutParameters())


class _WithoutParameters(logging.Filter):
    """aiosqlite's debug lines name each call with its arguments: the statement and its
    parameters, which hold secrets no pattern can recognise (a shopper page's token, a
    webhook secret). The line keeps the method and the statement, never the parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_call(a) if isinstance(a, partial) else a for a in record.args)
        return True


def _call(call: partial[Any]) -> str:
    name = getattr(call.func, "__name__", "call")
    statement = call.args[0] if call.args and isinstance(call.args[0], str) else ""
    return f"{name}({' '.join(statement.split())[:300]!r}, ...)" if statement else f"{name}(...)"


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (a drop-in for ``logging.getLogger``)."""
    return structlog.stdlib.get_logger(name)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (it may be swapped)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass
