"""The one place where everything is wired together."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from orderguard.api.render import order_json
from orderguard.config import Settings
from orderguard.services.intake import Intake
from orderguard.storage import migrate
from orderguard.storage.database import connect
from orderguard.storage.ports import UnitOfWorkFactory
from orderguard.storage.unit_of_work import SqlStorage


@dataclass
class Container:
    """The wired application: settings, storage and services."""

    settings: Settings
    storage: UnitOfWorkFactory
    intake: Intake

    async def close(self) -> None:
        """Release every connection."""
        await self.storage.close()


def wire(settings: Settings, storage: UnitOfWorkFactory) -> Container:
    """Services on top of ``storage`` (SQL or in-memory)."""
    render = partial(order_json, public_url=settings.public_url)
    return Container(settings=settings, storage=storage, intake=Intake(storage, render))


async def open_sql(settings: Settings, *, auto_migrate: bool | None = None) -> Container:
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
    return wire(settings, SqlStorage(db))
