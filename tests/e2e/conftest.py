"""Fixtures for end-to-end tests: a database on each back end, and an unmigrated one."""

from __future__ import annotations

import psycopg
import pytest


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
