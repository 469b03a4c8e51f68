"""Counts what one ``POST /v1/orders`` costs in database round trips and statements.

Runs the real application in-process (``build_app`` on a container from ``open_sql``,
driven through ``httpx.ASGITransport``, one request at a time) with libpq's protocol trace
switched on for every pooled connection, and prints one JSON object:

- ``round_trips``: ReadyForQuery messages per request, i.e. times the server answered a
  Sync or a simple query and the client waited for it (pipelined statements share one);
- ``statements``: statements executed per request (simple queries + Execute messages);
- ``sql``: the statements of one typical request, in order, shortened;
- ``rows``: rows per order in each table (to check the baseline writes the same).

``python bench/_probe.py`` with ``ORDERGUARD_DATABASE_URL`` set to a freshly migrated,
empty database.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg import pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import order_body, write_result

WARMUP, MEASURED = 12, 20
_traced: list[psycopg.AsyncConnection[Any]] = []
_files: list[Any] = []
_original_connect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]


async def _connect_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
    conn = await _original_connect(cls, *args, **kwargs)
    _traced.append(conn)
    _trace(conn)
    return conn


def _trace(conn: psycopg.AsyncConnection[Any]) -> None:
    out = tempfile.NamedTemporaryFile("w", prefix="og-trace-", suffix=".txt", delete=False)
    _files.append(out)
    conn.pgconn.trace(out.fileno())
    conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)


def _collect() -> list[str]:
    """Stop tracing and return the trace lines written so far."""
    for conn in _traced:
        conn.pgconn.untrace()
    lines: list[str] = []
    for out in _files:
        out.close()
        lines += Path(out.name).read_text(errors="replace").splitlines()
        os.unlink(out.name)
    _files.clear()
    return lines


def _retrace() -> None:
    for conn in _traced:
        _trace(conn)


def _count(lines: list[str]) -> tuple[int, int]:
    messages = _messages(lines)
    round_trips = sum(1 for m in messages if m.startswith("B\t") and "\tReadyForQuery" in m)
    statements = sum(
        1 for m in messages if m.startswith("F\t") and ("\tQuery\t" in m or "\tExecute\t" in m)
    )
    return round_trips, statements


def _messages(lines: list[str]) -> list[str]:
    """Trace lines, with statements that span several lines joined back together."""
    joined: list[str] = []
    for ln in lines:
        if ln.startswith(("F\t", "B\t")) or not joined:
            joined.append(ln)
        else:
            joined[-1] += " " + ln
    return joined


_PARSE = re.compile(r'F\t\d+\tParse\t "([^"]*)" "(.*)" \d+(?: \d+)*$', re.S)
_QUERY = re.compile(r'F\t\d+\tQuery\t "(.*)"$', re.S)
_BIND = re.compile(r'F\t\d+\tBind\t "[^"]*" "([^"]+)" ')
_prepared: dict[str, str] = {}


def _statements(lines: list[str]) -> list[str]:
    """Statements sent, in order (the rows of one executemany once)."""
    sent: list[str] = []
    for message in _messages(lines):
        if m := _PARSE.match(message):
            if m.group(1):
                _prepared[m.group(1)] = m.group(2)
                continue  # its Bind follows
            sql = m.group(2)
        elif m := _QUERY.match(message):
            sql = m.group(1)
        elif m := _BIND.match(message):
            sql = _prepared.get(m.group(1), m.group(1))
        else:
            continue
        sql = " ".join(sql.split())
        label = (sql[:87] + "...") if len(sql) > 90 else sql
        label = label or "(empty query: the pool's connection check)"
        if not sent or sent[-1] != label:
            sent.append(label)
    return sent


async def main() -> dict[str, Any]:
    psycopg.AsyncConnection.connect = classmethod(_connect_traced)  # type: ignore[method-assign,assignment]
    from orderguard.bootstrap import build_app, open_sql
    from orderguard.config import Settings

    settings = Settings.load()
    container = await open_sql(settings)
    app = build_app(container=container)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as client:

            async def place() -> None:
                ref = f"P-{uuid.uuid4().hex[:16]}"
                answer = await client.post(
                    "/v1/orders",
                    content=orjson.dumps(order_body(ref)),
                    headers={"Content-Type": "application/json", "Idempotency-Key": ref},
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"probe got {answer.status_code}: {answer.text[:300]}")

            await place()  # runs the "any API keys?" check, cached for 5 s
            _statements(_collect())  # learns the statements prepared so far
            _retrace()
            await place()  # a typical request
            one = _collect()
            _retrace()
            for _ in range(WARMUP - 2):
                await place()
            _collect()
            _retrace()
            for _ in range(MEASURED):
                await place()
            measured = _collect()
    finally:
        await container.close()
    round_trips, statements = _count(measured)
    rows = {}
    with psycopg.connect(settings.database_url) as conn:
        for table in ("orders", "order_lines", "timeline", "outbox", "idempotency_keys"):
            found = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
            rows[table] = (found[0] if found else 0) / (WARMUP + MEASURED)
    return {
        "requests": MEASURED,
        "pooled_connections": len(_traced),
        "round_trips": round_trips / MEASURED,
        "statements": statements / MEASURED,
        "sql": _statements(one),
        "rows": rows,
    }


if __name__ == "__main__":
    write_result(asyncio.run(main()))
