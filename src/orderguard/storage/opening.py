"""Opening the configured database as SQL storage, its schema checked (or migrated).

Kept in ``storage`` so that the CLI commands which only need the database get it without
importing ``bootstrap`` and the whole application; ``bootstrap`` opens it the same way.
It reads the two settings it needs through :class:`DatabaseSettings`, so it does not
import ``config``.
"""

from __future__ import annotations

from typing import Protocol

from orderguard.storage import migrate
from orderguard.storage.connect import connect
from orderguard.storage.unit_of_work import SqlStorage


class DatabaseSettings(Protocol):
    """What opening the database reads of the settings (``config.Settings`` has it)."""

    @property
    def database_url(self) -> str:
        """``sqlite:///PATH`` or ``postgresql://...``."""
        ...

    @property
    def db_pool_size(self) -> int:
        """Connections in the pool (PostgreSQL)."""
        ...


async def open_storage(
    settings: DatabaseSettings, *, auto_migrate: bool | None = None
) -> SqlStorage:
    """Connect to the configured database and check its schema.

    SQLite is migrated on the spot (``auto_migrate`` defaults to on for it); PostgreSQL
    must be migrated by ``orderguard migrate`` first, else ``SchemaBehind`` is raised.
    """
    db = await connect(settings.database_url, pool_size=settings.db_pool_size)
    try:
        if auto_migrate if auto_migrate is not None else db.dialect == "sqlite":
            await migrate.migrate(db)
        else:
            await migrate.ensure_current(db)
    except BaseException:
        await db.close()
        raise
    return SqlStorage(db)
