"""G7 for every end-to-end run: once a test is done with its database, every order's state
must be the one its timeline's last state change led to.

The query is the demo audit's (``orderguard.demo.audit.TIMELINE_DISAGREES``); it runs here
with the plain drivers, after the test and before its database is thrown away.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg

from orderguard.demo.audit import TIMELINE_DISAGREES

#: What the check prints for each order at most (a broken run may have thousands).
SHOWN = 10


def disagreements(url: str) -> list[tuple[str, str, str | None]]:
    """(order id, state, last state change) of each order whose two disagree; ``[]`` when
    the database holds no orders table (never migrated, or emptied by the test)."""
    query = (
        "SELECT d.id, o.state, (SELECT t.to_state FROM timeline t WHERE t.order_id = d.id "
        "AND t.kind = 'state_changed' ORDER BY t.seq DESC LIMIT 1) AS last_change "
        f"FROM ({TIMELINE_DISAGREES}) d JOIN orders o ON o.id = d.id"
    )
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return []
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'orders'").fetchall()
            return [tuple(row) for row in conn.execute(query)] if tables else []
    with psycopg.connect(url, connect_timeout=10) as conn:
        [(table,)] = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchall()
        rows = conn.execute(query).fetchall() if table else []
    return [(str(i), str(s), None if c is None else str(c)) for i, s, c in rows]


def assert_timelines_agree(url: str) -> None:
    """Fail naming the orders whose state is not their timeline's last state change."""
    wrong = disagreements(url)
    assert not wrong, (
        f"G7: {len(wrong)} order(s) whose state is not their timeline's last state change "
        f"(id, state, last change): {wrong[:SHOWN]}"
    )


@contextmanager
def timelines_checked(url: str) -> Iterator[str]:
    """Hand ``url`` to the test; afterwards, check every order's timeline against its state."""
    yield url
    assert_timelines_agree(url)
