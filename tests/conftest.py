"""Shared fixtures: real services (skipped on a laptop without them, failing in CI), a
PostgreSQL template database cloned per test, and storage on every back end."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.memory import InMemoryStorage
from orderguard.storage.unit_of_work import SqlStorage

#: Every sandbox answer and webhook the tests produce is checked against Stripe's description;
#: under CI=true, tests/ci_skips.py fails any skip or expected failure; tests/internal_errors.py
#: repeats an internal error (a worker's too) after the summary line.
pytest_plugins = ("tests.stripe_contract_plugin", "tests.ci_skips", "tests.internal_errors")

#: In CI a test whose service is missing fails instead of skipping.
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: Where the tests find PostgreSQL: a maintenance database on a server with trust auth.
#: The base URL of an application driven in-process (``httpx.ASGITransport``), as a developer
#: reaches a local server: a loopback name and the port the transport reports as bound,
#: which the Host check accepts in development, and a loopback peer (the transport's).
LOCAL_URL = "http://127.0.0.1:8000"
PG_ADMIN_URL = os.environ.get(
    "ORDERGUARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


#: ``make test-deep``: fresh random examples every run (CI's ``ci`` profile replays the same
#: derandomized ones), twenty times as many, no deadline; a failure prints its reproduction
#: blob. Chosen with ``HYPOTHESIS_PROFILE=deep`` (or ``--hypothesis-profile=deep``).
settings.register_profile(
    "deep", max_examples=2000, derandomize=False, deadline=None, database=None, print_blob=True
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def service_missing(name: str, reason: str) -> None:
    """Skip the test, or fail it in CI, because ``name`` cannot be reached."""
    message = f"{name} unavailable: {reason}"
    if CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _schema_digest() -> str:
    folder = resources.files("orderguard.storage.migrations")
    texts = sorted(p.name + p.read_text() for p in folder.iterdir() if p.name.endswith(".sql"))
    return hashlib.sha256("".join(texts).encode()).hexdigest()[:10]


@pytest.fixture(scope="session")
def pg_template() -> str:
    """A migrated template database, built once per schema version and shared."""
    try:
        admin = _admin()
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", str(exc).strip())
    name = f"og_template_{_schema_digest()}"
    with admin:
        admin.execute("SELECT pg_advisory_lock(4242)")
        try:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                admin.execute(f'CREATE DATABASE "{name}"')
                _migrate(_pg_url(name))
        finally:
            admin.execute("SELECT pg_advisory_unlock(4242)")
    return name


def _migrate(url: str) -> None:
    """Migrate ``url`` on a thread of its own: the caller may be inside an event loop."""

    async def run() -> None:
        db = await connect(url, pool_size=1)
        try:
            await migrate.migrate(db)
        finally:
            await db.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextmanager
def pg_clone(template: str) -> Iterator[str]:
    """A fresh database cloned from ``template`` (its URL), dropped afterwards; for
    fixtures of a wider scope than :func:`pg_url`'s."""
    name = f"og_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    with pg_clone(pg_template) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file for one test (created and migrated on first open)."""
    return f"sqlite:///{tmp_path / 'orderguard.db'}"


async def open_storage(url: str, *, pool_size: int = 10) -> SqlStorage:
    """Migrated SQL storage on ``url``."""
    db = await connect(url, pool_size=pool_size)
    await migrate.migrate(db)
    return SqlStorage(db)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[InMemoryStorage | SqlStorage]:
    """The same storage contract on every back end."""
    if request.param == "memory":
        yield InMemoryStorage()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    sql = await open_storage(url)
    try:
        yield sql
    finally:
        await sql.close()
