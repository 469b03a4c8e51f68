"""Open the database a URL names: SQLite or PostgreSQL.

Kept apart from ``database.py`` so that the drivers' modules import the interface they
implement and nothing imports back (no file cycle).
"""

from __future__ import annotations

from orderguard.storage.database import Database, redact_url
from orderguard.storage.errors import StorageError


async def connect(url: str, *, pool_size: int = 10) -> Database:
    """Open the database at ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    if url.startswith(("postgresql://", "postgres://")):
        from orderguard.storage.postgres import PostgresDatabase

        return await PostgresDatabase.open(url, pool_size=pool_size)
    if url.startswith("sqlite:///"):
        from orderguard.storage.sqlite import SqliteDatabase

        return await SqliteDatabase.open(url.removeprefix("sqlite:///"))
    raise StorageError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///PATH or postgresql://..."
    )
