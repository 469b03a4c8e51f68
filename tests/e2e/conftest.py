"""Fixtures for end-to-end tests: a database on each back end, and an unmigrated one.

Every database a test gets here is checked once the test is done: each order's state must
be where its timeline's last state change took it (G7).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.e2e.timeline_check import timelines_checked


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database for one test: a SQLite file, or a migrated PostgreSQL clone."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def unmigrated_pg_url(pg_url: str) -> str:
    """The test's PostgreSQL database (from ``pg_url``) emptied back to no schema at all."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return pg_url


@pytest.fixture
def sqlite_url(sqlite_url: str) -> Iterator[str]:
    """The root fixture's SQLite file; after the test, every order's state must be its
    timeline's last state change (G7, for every end-to-end run)."""
    with timelines_checked(sqlite_url) as url:
        yield url


@pytest.fixture
def pg_url(pg_url: str) -> Iterator[str]:
    """The root fixture's PostgreSQL database, checked like :func:`sqlite_url` before it
    is dropped."""
    with timelines_checked(pg_url) as url:
        yield url
