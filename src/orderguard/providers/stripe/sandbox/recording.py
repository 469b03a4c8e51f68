"""A test-only switch: append every ``/v1`` answer and every webhook body to a JSON-lines file.

Set ``ORDERGUARD_SANDBOX_CONTRACT_LOG`` to a file path and the sandbox (in-process or as a
process) appends one line per answer it gives on ``/v1/...`` and per webhook POST it makes;
the test suite checks them against Stripe's OpenAPI description. Unset (always, outside the
tests), nothing is recorded and no middleware is installed.

Each line is written with a single ``write`` on a file opened with ``O_APPEND``, so several
processes can share one file without interleaving lines.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The environment variable naming the file to append to.
ENV = "ORDERGUARD_SANDBOX_CONTRACT_LOG"
#: Only answers under this prefix (Stripe's API) are recorded.
API_PREFIX = "/v1/"

_log = logging.getLogger(__name__)


def log_path() -> str | None:
    """The file recordings go to, or ``None`` when recording is off."""
    return os.environ.get(ENV) or None


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return {"_not_json": body.decode(errors="replace")[:500]}


def record(entry: dict[str, Any]) -> None:
    """Append ``entry`` (plus the running test's name and the pid) when recording is on."""
    path = log_path()
    if path is None:
        return
    entry = {**entry, "test": os.environ.get("PYTEST_CURRENT_TEST"), "pid": os.getpid()}
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        _log.exception("the sandbox could not append to its contract log %s", path)


def record_webhook(url: str, body: bytes) -> None:
    """Record one webhook POST's body (read only when recording is on: the sandbox calls
    this for every delivery)."""
    if log_path() is not None:
        record({"kind": "webhook", "url": url, "body": _parsed(body)})


class RecordResponses:
    """ASGI middleware recording each ``/v1`` answer: method, path, status and JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    record(
                        {
                            "kind": "response",
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "body": _parsed(b"".join(chunks)) if any(chunks) else None,
                        }
                    )
            await send(message)

        await self.app(scope, receive, capture)
