"""The SQL orderguard's own code sends for one operation, and its plans.

:class:`Recorder` wraps the PostgreSQL connection class of ``orderguard.storage.postgres``
while an operation runs, keeping each statement with its parameters (only the recording:
the statement still runs unchanged). :func:`explain` then asks PostgreSQL for the plan of
each recorded statement, in a transaction it rolls back (EXPLAIN ANALYZE of an UPDATE runs
it). ``bench/growth.py`` puts the plans in the report; the plan tests
(``tests/integration/test_growth_plans.py``) check each hot query uses its index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from orderguard.storage import postgres
from orderguard.storage.database import named_to_pyformat

#: Statements not worth a plan (they touch no table that grows).
_TRIVIAL = ("SELECT 1", "SELECT now()", "SELECT MAX(version)", "SELECT MAX(seen_at)")


@dataclass(frozen=True)
class Statement:
    """One statement as the code sent it."""

    sql: str
    params: dict[str, Any]


class Recorder:
    """Records the statements sent through ``PostgresConnection`` while active."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    @asynccontextmanager
    async def active(self) -> AsyncIterator[Recorder]:
        cls = postgres.PostgresConnection
        originals = {name: getattr(cls, name) for name in ("execute", "fetchall")}

        def wrap(name: str) -> Callable[..., Awaitable[Any]]:
            original = originals[name]

            async def recorded(self: Any, sql: str, params: Any = None) -> Any:
                self_recorder.statements.append(Statement(sql, dict(params or {})))
                return await original(self, sql, params)

            return recorded

        self_recorder = self
        for name in originals:
            setattr(cls, name, wrap(name))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(cls, name, original)

    def worth_planning(self) -> list[Statement]:
        """Distinct recorded statements that read tables that grow (``INSERT ... VALUES``
        writes one row and reads nothing: left out)."""
        seen: set[str] = set()
        kept = []
        for statement in self.statements:
            text = " ".join(statement.sql.split())
            inserts_values = text.startswith("INSERT INTO") and " SELECT " not in text
            if text in seen or text.startswith(_TRIVIAL) or inserts_values:
                continue
            seen.add(text)
            kept.append(statement)
        return kept


async def explain(url: str, statement: Statement, *, analyze: bool = True) -> str:
    """PostgreSQL's plan of ``statement`` (text), run and rolled back when ``analyze``."""
    options = "ANALYZE, BUFFERS, " if analyze else ""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        try:
            cursor = await conn.execute(
                f"EXPLAIN ({options}COSTS OFF) " + named_to_pyformat(statement.sql),
                statement.params,
            )
            lines = [str(row[0]) for row in await cursor.fetchall()]
        finally:
            await conn.rollback()
    return "\n".join(lines)


def one_line(sql: str) -> str:
    """``sql`` on one line, for the report."""
    return " ".join(sql.split())
