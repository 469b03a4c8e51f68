"""Versioned schema migrations, applied in order, each in its own transaction.

A migration is ``migrations/NNNN_name.sql`` (shared text, with ``{ts}`` and ``{serial}``
standing for the dialect's types) plus an optional ``NNNN_name.<dialect>.sql``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from orderguard.storage.database import Database, Dialect, transaction
from orderguard.storage.errors import StorageError

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"ts": "TEXT", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "ts": "TIMESTAMPTZ",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Serialises concurrent ``migrate`` runs on PostgreSQL (an arbitrary, fixed lock id).
_PG_LOCK = 7_240_517


@dataclass(frozen=True, slots=True, order=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str

    def script(self, dialect: Dialect) -> str:
        """The SQL of this migration for ``dialect``."""
        folder = resources.files("orderguard.storage.migrations")
        stem = f"{self.version:04d}_{self.name}"
        text = folder.joinpath(f"{stem}.sql").read_text().format(**_TYPES[dialect])
        extra = folder.joinpath(f"{stem}.{dialect}.sql")
        return text + ("\n" + extra.read_text() if extra.is_file() else "")


def available() -> list[Migration]:
    """Every migration shipped with this version of orderguard, oldest first."""
    folder = resources.files("orderguard.storage.migrations")
    found = (_FILE.match(entry.name) for entry in folder.iterdir())
    return sorted(Migration(int(m[1]), m[2]) for m in found if m)


def latest_version() -> int:
    """The schema version this code expects."""
    return available()[-1].version


async def current_version(db: Database) -> int:
    """The schema version the database is at (0 when it has none)."""
    await _ensure_table(db)
    async with transaction(db, write=False) as conn:
        row = await conn.fetchone("SELECT MAX(version) AS v FROM schema_migrations")
    return int(row["v"]) if row and row["v"] is not None else 0


async def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied.

    Safe to run from several processes at once: each migration re-checks the version
    under a lock (PostgreSQL's advisory lock, SQLite's write lock) before it applies.
    """
    await _ensure_table(db)
    applied = []
    for migration in available():
        async with transaction(db) as conn:
            if db.dialect == "postgresql":
                await conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
            row = await conn.fetchone("SELECT MAX(version) AS v FROM schema_migrations")
            if row and row["v"] is not None and int(row["v"]) >= migration.version:
                continue
            await conn.execute_script(migration.script(db.dialect))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (:version, :name, :at)",
                {
                    "version": migration.version,
                    "name": migration.name,
                    "at": datetime.now(UTC).isoformat(),
                },
            )
        applied.append(migration)
    return applied


async def ensure_current(db: Database) -> None:
    """Raise :class:`SchemaBehind` unless the schema is at :func:`latest_version`."""
    current, expected = await current_version(db), latest_version()
    if current < expected:
        raise SchemaBehind(current, expected)


class SchemaBehind(StorageError):
    """The database schema is older than this version of orderguard expects."""

    def __init__(self, current: int, expected: int) -> None:
        self.current, self.expected = current, expected
        super().__init__(
            f"the database schema is at version {current}, this orderguard needs {expected}: "
            "run `orderguard migrate` (with the same ORDERGUARD_DATABASE_URL) first"
        )


async def _ensure_table(db: Database) -> None:
    async with transaction(db) as conn:
        if db.dialect == "postgresql":  # CREATE TABLE IF NOT EXISTS races without it
            await conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
